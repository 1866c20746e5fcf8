package postgres

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// The tests in this file pin the points of the Store contract that
// realistic broken stores get wrong (times compared as text, batched
// cleanups that stop early, two-phase cleanups, LIKE on keys, Touch as
// read-then-write, shared storage), on this driver.

// contractStore returns a store over a table of its own.
func contractStore(t *testing.T, schema, table string, opts ...Option) *Store {
	t.Helper()
	return newStore(t, openDB(t, testDSN(t)), append([]Option{WithSchema(schema), WithTable(table)}, opts...)...)
}

// TestCleanupAcrossTheCutoff stores thousands of records whose atimes lie
// around a series of cutoffs, with every kind of fraction (whole seconds,
// half seconds, single microseconds), and runs Cleanup in small batches at
// each cutoff: exactly the records strictly before it go, every time.
func TestCleanupAcrossTheCutoff(t *testing.T) {
	s := contractStore(t, newSchema(t), "across", WithCleanupBatch(64))
	ctx := ctxT(t)
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
	times := make([]string, len(keys))
	for i, k := range keys {
		times[i] = atime[k].UTC().Format(time.RFC3339Nano)
	}
	_, err := admin(t).Exec(`INSERT INTO `+s.Table()+` (session_id, data, atime, created, version)
SELECT k, '\x00'::bytea, a, a, 1 FROM unnest($1::text[], $2::timestamptz[]) AS u(k, a)`, pq.Array(keys), pq.Array(times))
	if err != nil {
		t.Fatal(err)
	}
}

// TestCleanupRacingWrites runs Cleanup over records that were all idle
// when it started while requests touch or update many of them: a write
// that succeeded saved its record from the cleanup, one that found the
// record gone came after its deletion, and every record is accounted for.
func TestCleanupRacingWrites(t *testing.T) {
	s := contractStore(t, newSchema(t), "racing", WithCleanupBatch(50))
	ctx := ctxT(t)
	const n = 2000
	old := t0.Add(-time.Hour)
	var keys []string
	atime := map[string]time.Time{}
	for i := range n {
		key := fmt.Sprintf("r%d", i)
		keys = append(keys, key)
		atime[key] = old.Add(time.Duration(i) * time.Millisecond)
	}
	fill(t, s, keys, atime)

	type result struct {
		key, op string
		err     error
	}
	results := make(chan result, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	var deleted int
	var cleanupErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		deleted, cleanupErr = s.Cleanup(ctx, t0)
	}()
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := w; i < n; i += 4 * 3 { // every third record of this worker's quarter, from both ends of the atime order
				key := keys[i]
				if w%2 == 1 {
					key = keys[n-1-i]
				}
				if i%2 == 0 {
					results <- result{key, "touch", s.Touch(ctx, key, t0)}
				} else {
					results <- result{key, "update", s.Update(ctx, key, session.Record{Data: []byte("saved"), ATime: t0, Version: 1})}
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	close(results)
	if cleanupErr != nil {
		t.Fatal(cleanupErr)
	}
	saved, late := 0, 0
	for r := range results {
		got, err := s.Load(ctx, r.key)
		switch {
		case r.err == nil:
			saved++
			if err != nil || got.ATime.Before(t0.Truncate(time.Microsecond)) || (r.op == "update" && (string(got.Data) != "saved" || got.Version != 2)) {
				t.Errorf("%s of %s succeeded but the record is now %+v, %v", r.op, r.key, got, err)
			}
		case errors.Is(r.err, session.ErrNotFound):
			late++
			if !errors.Is(err, session.ErrNotFound) {
				t.Errorf("%s of %s found no record, yet it is there: %+v, %v", r.op, r.key, got, err)
			}
		default:
			t.Errorf("%s of %s: %v", r.op, r.key, r.err)
		}
	}
	if c := count(t, s); deleted+c != n || c != saved {
		t.Errorf("Cleanup deleted %d, %d rows left, %d writes saved their record; want %d in all and the saved ones left", deleted, c, saved, n)
	}
	t.Logf("Cleanup deleted %d; %d writes came first, %d after the deletion", deleted, saved, late)
}

// TestTouchRacingWrites runs Touch at the same moment as Delete, and as
// Update, of one record, round after round: a Touch never brings a deleted
// record back and never undoes an Update.
func TestTouchRacingWrites(t *testing.T) {
	s := contractStore(t, newSchema(t), "touchrace")
	ctx := ctxT(t)
	t1, t2 := t0.Add(time.Minute), t0.Add(2*time.Minute)
	race := func(a, b func() error) (error, error) {
		var wg sync.WaitGroup
		start := make(chan struct{})
		var ea, eb error
		wg.Add(2)
		go func() { defer wg.Done(); <-start; ea = a() }()
		go func() { defer wg.Done(); <-start; eb = b() }()
		close(start)
		wg.Wait()
		return ea, eb
	}
	for round := range 100 {
		key := fmt.Sprintf("t%d", round)
		mustCreate(t, s, key, rec("v1", t0))
		touchErr, delErr := race(func() error { return s.Touch(ctx, key, t1) }, func() error { return s.Delete(ctx, key) })
		if delErr != nil || (touchErr != nil && !errors.Is(touchErr, session.ErrNotFound)) {
			t.Fatalf("round %d: Touch %v, Delete %v", round, touchErr, delErr)
		}
		if got, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("round %d: Touch racing Delete left %+v, %v", round, got, err)
		}

		mustCreate(t, s, key, rec("v1", t0))
		touchErr, updErr := race(func() error { return s.Touch(ctx, key, t1) },
			func() error {
				return s.Update(ctx, key, session.Record{Data: []byte("v2"), ATime: t2, Version: 1})
			})
		if touchErr != nil || updErr != nil {
			t.Fatalf("round %d: Touch %v, Update %v", round, touchErr, updErr)
		}
		got := mustLoad(t, s, key)
		if string(got.Data) != "v2" || got.Version != 2 || !(got.ATime.Equal(t1.Truncate(time.Microsecond)) || got.ATime.Equal(t2.Truncate(time.Microsecond))) {
			t.Fatalf("round %d: Touch racing Update left %q v%d at %v", round, got.Data, got.Version, got.ATime)
		}
	}
}

// TestKeysAreNoPatterns: "_" in a key is a plain byte to Delete and Load
// (a LIKE would take it for any character).
func TestKeysAreNoPatterns(t *testing.T) {
	s := contractStore(t, newSchema(t), "patterns")
	ctx := ctxT(t)
	for _, key := range []string{"a_b", "aXb", "a_bc", "ab", "a__b"} {
		mustCreate(t, s, key, rec(key, t0))
	}
	if err := s.Delete(ctx, "a_b"); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"aXb", "a_bc", "ab", "a__b"} {
		if got := mustLoad(t, s, key); string(got.Data) != key {
			t.Fatalf("%s holds %q after Delete(a_b)", key, got.Data)
		}
	}
	if _, err := s.Load(ctx, "a_b"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a_b after its Delete: %v", err)
	}
}

// TestTimesGoBothWays: an Update may move ATime back (the caller's clock
// decides, the store never keeps the later one), and a Touch to the ATime
// already stored succeeds.
func TestTimesGoBothWays(t *testing.T) {
	s := contractStore(t, newSchema(t), "times_back")
	ctx := ctxT(t)
	mustCreate(t, s, "k", rec("v", t0))
	if err := s.Touch(ctx, "k", t0); err != nil {
		t.Fatalf("Touch to the stored ATime: %v", err)
	}
	earlier := t0.Add(-time.Hour)
	if err := s.Update(ctx, "k", session.Record{Data: []byte("w"), ATime: earlier, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s, "k"); !got.ATime.Equal(earlier.Truncate(time.Microsecond)) {
		t.Fatalf("Update to an earlier ATime stored %v, want %v", got.ATime, earlier)
	}
	if err := s.Touch(ctx, "k", earlier.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s, "k"); !got.ATime.Equal(earlier.Add(-time.Minute).Truncate(time.Microsecond)) {
		t.Fatalf("Touch to an earlier ATime stored %v", got.ATime)
	}
}

// TestNamespacesShareNothing: two stores over two tables of one schema (two
// applications on one database) hold the same keys; one's Delete, Cleanup
// and Update leave the other's records alone.
func TestNamespacesShareNothing(t *testing.T) {
	schema := newSchema(t)
	a := contractStore(t, schema, "app_a")
	b := contractStore(t, schema, "app_b")
	ctx := ctxT(t)
	for _, key := range []string{"k1", "k2", "k3"} {
		mustCreate(t, a, key, rec("a", t0))
		mustCreate(t, b, key, rec("b", t0.Add(time.Hour)))
	}
	if err := a.Delete(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, "k2", session.Record{Data: []byte("a2"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if n, err := a.Cleanup(ctx, t0.Add(time.Minute)); err != nil || n != 2 {
		t.Fatalf("a.Cleanup = %d, %v; want its own 2", n, err)
	}
	for _, key := range []string{"k1", "k2", "k3"} {
		if got := mustLoad(t, b, key); string(got.Data) != "b" || got.Version != 1 {
			t.Fatalf("b's %s after a's writes: %q v%d", key, got.Data, got.Version)
		}
	}
}
