package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

func owned(data, owner string, at time.Time) session.Record {
	r := rec(data, at)
	r.Owner = owner
	return r
}

// ownedKeys returns the sorted keys LoadOwned lists for owner, checking
// that each record is as Load returns it.
func ownedKeys(t *testing.T, s *Store, owner string) []string {
	t.Helper()
	recs, err := s.LoadOwned(context.Background(), owner)
	if err != nil {
		t.Fatalf("LoadOwned(%s): %v", owner, err)
	}
	keys := []string{}
	for _, r := range recs {
		if r.Record.Owner != owner {
			t.Errorf("LoadOwned(%s) lists %s with owner %q", owner, r.Key, r.Record.Owner)
		}
		l := mustLoad(t, s, r.Key)
		if string(l.Data) != string(r.Record.Data) || l.Version != r.Record.Version || !l.ATime.Equal(r.Record.ATime) || !l.Created.Equal(r.Record.Created) {
			t.Errorf("LoadOwned(%s) gives %s as %+v, Load as %+v", owner, r.Key, r.Record, l)
		}
		keys = append(keys, r.Key)
	}
	slices.Sort(keys)
	return keys
}

func wantOwned(t *testing.T, s *Store, owner string, want ...string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	slices.Sort(want)
	if got := ownedKeys(t, s, owner); !slices.Equal(got, want) {
		t.Errorf("LoadOwned(%s) = %v, want %v", owner, got, want)
	}
}

// entries returns the keys in owner's set, stale ones included.
func entries(t *testing.T, s *Store, owner string) []string {
	t.Helper()
	keys, err := s.client.HKeys(context.Background(), s.ownerKey(owner)).Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// TestOwners walks a session through every write that changes what an
// owner lists, on each topology and protocol.
func TestOwners(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		mustCreate(t, s, "a1", owned("a1", "alice", t0))
		mustCreate(t, s, "a2", owned("a2", "alice", t0))
		mustCreate(t, s, "b1", owned("b1", "bob", t0))
		mustCreate(t, s, "anon", rec("anon", t0))
		wantOwned(t, s, "alice", "a1", "a2")
		wantOwned(t, s, "bob", "b1")
		wantOwned(t, s, "carol")
		if got := mustLoad(t, s, "a1"); got.Owner != "alice" {
			t.Fatalf("Load gives owner %q", got.Owner)
		}

		// Touch keeps the owner; Update with the same owner keeps it.
		if err := s.Touch(ctx, "a1", t0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		r := mustLoad(t, s, "a1")
		if r.Owner != "alice" || !r.ATime.Equal(t0.Add(time.Second)) {
			t.Fatalf("after Touch: %+v", r)
		}
		r.Data = []byte("changed")
		if err := s.Update(ctx, "a1", r); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice", "a1", "a2")

		// Update moves a2 to bob, then clears a1's owner, then binds the
		// anonymous session to carol.
		r = mustLoad(t, s, "a2")
		r.Owner = "bob"
		if err := s.Update(ctx, "a2", r); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice", "a1")
		wantOwned(t, s, "bob", "a2", "b1")
		r = mustLoad(t, s, "a1")
		r.Owner = ""
		if err := s.Update(ctx, "a1", r); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice")
		if got := mustLoad(t, s, "a1"); got.Owner != "" || string(got.Data) != "changed" {
			t.Fatalf("a1 after clearing its owner: %+v", got)
		}
		r = mustLoad(t, s, "anon")
		r.Owner = "carol"
		if err := s.Update(ctx, "anon", r); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "carol", "anon")
		// The sets hold no more than what they list: every change removed
		// the old entry.
		if e := entries(t, s, "alice"); len(e) != 0 {
			t.Errorf("alice's set still holds %v", e)
		}

		// A stale Update changes no owner.
		r.Owner = "alice"
		if err := s.Update(ctx, "anon", r); !errors.Is(err, session.ErrConflict) {
			t.Fatalf("stale Update: %v", err)
		}
		wantOwned(t, s, "carol", "anon")
		wantOwned(t, s, "alice")

		// Delete and Cleanup remove the sessions from their owners' sets.
		if err := s.Delete(ctx, "b1"); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "bob", "a2")
		if n, err := s.Cleanup(ctx, t0.Add(time.Hour)); err != nil || n != 3 {
			t.Fatalf("Cleanup = %d, %v; want 3", n, err)
		}
		for _, o := range []string{"alice", "bob", "carol"} {
			wantOwned(t, s, o)
			if e := entries(t, s, o); len(e) != 0 {
				t.Errorf("%s's set still holds %v after Cleanup", o, e)
			}
		}
	})
}

// TestOwnerStaleEntries sets up, directly, each state that a crash or an
// interleaving between a record and its owner's set can leave, and checks
// what LoadOwned makes of it.
func TestOwnerStaleEntries(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		set := s.ownerKey("alice")
		mustCreate(t, s, "live", owned("x", "alice", t0))
		mustCreate(t, s, "moved", owned("x", "bob", t0))
		// An entry whose record is gone (expired by Redis, or a crash
		// after Delete): skipped and removed.
		// An entry of a record bound to another owner (an Update moving it
		// here, between its two steps): skipped, kept.
		if err := s.client.HSet(ctx, set, "gone", "tokentok", "moved", "tokentok").Err(); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice", "live")
		if got := entries(t, s, "alice"); !slices.Equal(got, []string{"live", "moved"}) {
			t.Errorf("entries after LoadOwned: %v, want [live moved]", got)
		}
		// Removal is conditional on the token: an entry rewritten by a
		// newer binding stays.
		if err := ownerDelScript.Run(ctx, s.client, []string{set}, "live", "not-the-token").Err(); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice", "live")
		// Deleting a record that lost its entry is fine.
		if err := s.client.HDel(ctx, set, "live").Err(); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "live"); err != nil {
			t.Fatal(err)
		}
		wantOwned(t, s, "alice")
	})
}

// TestOwnerUpdateNeedsEntryFirst checks the order of an owner change on
// the Cluster protocol: the new owner's entry first, so that no crash
// leaves a session bound to an owner whose set lacks it.
func TestOwnerUpdateNeedsEntryFirst(t *testing.T) {
	c := newClient(t)
	s := testStore(t, multiStep{c})
	ctx := testCtx(t)
	mustCreate(t, s, "k", owned("x", "bob", t0))
	// The first attempt of an owner change writes nothing and asks for
	// the entry.
	r := mustLoad(t, s, "k")
	r.Owner = "alice"
	sh := shardOf("k")
	res, err := updateScript.Run(ctx, c, []string{s.recPrefix[sh] + "k", s.indexKey[sh]},
		versionBytes(r.Version), encode(r, r.Version+1, 42), score(r.ATime), "k", "", "", ownerNotAdded).Slice()
	if err != nil || code(res) != updNeedsOwner {
		t.Fatalf("update without the entry: %v, %v; want updNeedsOwner", res, err)
	}
	if got := mustLoad(t, s, "k"); got.Owner != "bob" || got.Version != 1 {
		t.Fatalf("record changed by a refused attempt: %+v", got)
	}
	// The full Update adds the entry, then moves the record.
	if err := s.Update(ctx, "k", r); err != nil {
		t.Fatal(err)
	}
	wantOwned(t, s, "alice", "k")
	wantOwned(t, s, "bob")
}

// TestOwnerPrune: an owner's set that grows with entries of records gone,
// and that nobody lists, is pruned when bindings bring it to 64, 128, ...
func TestOwnerPrune(t *testing.T) {
	eachTopology(t, func(t *testing.T, s *Store) {
		ctx := testCtx(t)
		for i := range pruneFrom - 1 {
			key := fmt.Sprintf("p%d", i)
			mustCreate(t, s, key, owned("x", "dave", t0))
			// Gone the way Redis's expiry removes it: record only.
			if err := s.client.Unlink(ctx, s.recPrefix[shardOf(key)]+key).Err(); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(entries(t, s, "dave")); n != pruneFrom-1 {
			t.Fatalf("%d entries before the pruning binding, want %d", n, pruneFrom-1)
		}
		mustCreate(t, s, "last", owned("x", "dave", t0))
		if got := entries(t, s, "dave"); !slices.Equal(got, []string{"last"}) {
			t.Fatalf("entries after the 64th binding: %d, want [last]", len(got))
		}
	})
}

// TestOwnerCostIsTheOwners: LoadOwned reads the owner's set and its
// records, whatever else the store holds.
func TestOwnerCostIsTheOwners(t *testing.T) {
	var rt roundTrips
	c := newClient(t)
	o := c.Options()
	o.Dialer = rt.dial
	o.PoolSize = 1
	counted := newClientWith(t, o)
	s := testStore(t, counted)
	for i := range 2000 {
		mustCreate(t, s, fmt.Sprintf("other%d", i), owned("x", fmt.Sprintf("user%d", i%100), t0))
	}
	for i := range 3 {
		mustCreate(t, s, fmt.Sprintf("mine%d", i), owned("x", "erin", t0))
	}
	before := rt.count()
	wantOwned(t, s, "erin", "mine0", "mine1", "mine2")
	// HGETALL, then one pipeline of GETs (plus the three Loads of ownedKeys).
	if got := rt.count() - before; got != 2+3 {
		t.Errorf("LoadOwned among 2000 other sessions: %d round trips, want 2 (+3 checking Loads)", got)
	}
	if strings.Contains(strings.Join(entries(t, s, "erin"), ","), "other") {
		t.Error("erin's set holds other users' sessions")
	}
}
