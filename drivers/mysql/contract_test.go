package mysql

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// The test in this file pins, on this driver, the point of the Store
// contract that its batched Cleanup could get wrong beyond what the
// conformance suite's Store/Cleanup checks do with the default batch:
// many small batches around many cutoffs.

// contractStore returns a store over a table of its own.
func contractStore(t *testing.T, table string, opts ...Option) *Store {
	t.Helper()
	return newTestStore(t, table, nil, opts...)
}

// count returns how many rows s's table holds.
func count(t *testing.T, s *Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow("SELECT COUNT(*) FROM " + s.Table()).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestCleanupAcrossTheCutoff stores thousands of records whose atimes lie
// around a series of cutoffs, with every kind of fraction (whole seconds,
// half seconds, single microseconds), and runs Cleanup in small batches at
// each cutoff: exactly the records strictly before it go, every time.
func TestCleanupAcrossTheCutoff(t *testing.T) {
	s := contractStore(t, "ws_across", WithCleanupBatch(64))
	ctx := testCtx(t)
	base := time.Date(2041, 3, 7, 8, 0, 12, 0, time.UTC) // a whole second
	rng := rand.New(rand.NewPCG(1, 2))
	const n = 3000
	offsets := []time.Duration{0, time.Microsecond, -time.Microsecond, 500 * time.Millisecond, time.Second, -time.Second, 50 * time.Millisecond, 5 * time.Second}
	atime := map[string]time.Time{}
	var keys []string
	for i := range n {
		var off time.Duration
		if i < len(offsets)*20 {
			off = offsets[i%len(offsets)] + time.Duration(i/len(offsets)-10)*time.Second
		} else {
			off = time.Duration(rng.Int64N(int64(20*time.Second))) - 10*time.Second
		}
		at := base.Add(off).Truncate(time.Microsecond)
		key := fmt.Sprintf("c%d", i)
		atime[key] = at
		keys = append(keys, key)
	}
	fill(t, s, keys, atime)
	left := n
	for _, cutoff := range []time.Time{
		base.Add(-10 * time.Second), base.Add(-9500 * time.Millisecond), base.Add(-time.Microsecond), base,
		base.Add(time.Microsecond), base.Add(500 * time.Millisecond), base.Add(time.Second), base.Add(4*time.Second + 50*time.Millisecond),
		base.Add(20 * time.Second),
	} {
		want := 0
		for _, at := range atime {
			if at.Before(cutoff) {
				want++
			}
		}
		got, err := s.Cleanup(ctx, cutoff)
		if err != nil || got != want {
			t.Fatalf("Cleanup(%s) = %d, %v; want %d", cutoff.Format(time.RFC3339Nano), got, err, want)
		}
		for key, at := range atime {
			if at.Before(cutoff) {
				delete(atime, key)
			}
		}
		left -= got
		if c := count(t, s); c != left {
			t.Fatalf("after Cleanup(%s): %d rows, want %d", cutoff.Format(time.RFC3339Nano), c, left)
		}
	}
	if left != 0 {
		t.Fatalf("%d rows left after the last cutoff", left)
	}
}

// fill creates keys with the given atimes in one statement.
func fill(t *testing.T, s *Store, keys []string, atime map[string]time.Time) {
	t.Helper()
	args := make([]any, 0, 3*len(keys))
	for _, k := range keys {
		args = append(args, k, atime[k].UTC(), atime[k].UTC())
	}
	q := "INSERT INTO " + s.Table() + " (session_id, atime, data, created, version) VALUES (?, ?, 'x', ?, 1)" +
		strings.Repeat(", (?, ?, 'x', ?, 1)", len(keys)-1)
	if _, err := s.DB().Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}

// The other contract points (cleanup racing writes, Touch racing Update
// and Delete, keys that look like patterns, times going back, namespaces
// sharing a database) are checked by the conformance suite this driver
// runs (Store/Concurrent/..., Store/Key/NoWildcards, Store/Update/EarlierATime,
// Store/Touch/SameATime, Store/Namespace/...).
