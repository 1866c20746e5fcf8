package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// The "Store/Owner/..." subtests check stores that implement the optional
// session.OwnerIndex: Record.Owner kept through every write, and
// LoadOwned listing exactly one owner's records, as Load returns them, at
// once after every write of the instance and within Staleness for
// another instance. Stores that do not implement it skip them.

// ownerIface is the Implements value of the owner subtests.
const ownerIface = "session.OwnerIndex"

// ownerKey returns an owner key like the manager's (a hash in base64url),
// distinct for each label.
func ownerKey(label string) string {
	sum := sha256.Sum256([]byte("owner\x00" + label))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ownerT is the fixture of a "Store/Owner/..." subtest.
type ownerT struct {
	*storeT
	oi session.OwnerIndex
	// labels names the keys and owners of the subtest for messages.
	labels map[string]string
}

// ownerFixture opens a store over a fresh namespace, or skips the subtest
// if the stores under test do not implement session.OwnerIndex.
func ownerFixture(f *fixture) *ownerT {
	if f.s.ownerIndex.Load() == 2 {
		f.t.Skip(noOwnerIndex)
	}
	x := storeFixture(f)
	oi, ok := x.st.(session.OwnerIndex)
	if !ok {
		f.t.Skip(noOwnerIndex)
	}
	return &ownerT{storeT: x, oi: oi, labels: map[string]string{}}
}

const noOwnerIndex = "the store does not implement session.OwnerIndex, which is optional: without it the manager's owner operations report session.ErrNoOwnerIndex, and there is nothing to check here"

// index returns st's OwnerIndex (another instance of the same store).
func (x *ownerT) index(st session.Store) session.OwnerIndex {
	x.t.Helper()
	oi, ok := st.(session.OwnerIndex)
	if !ok {
		x.t.Fatalf("a second store from Harness.NewStore does not implement session.OwnerIndex, though the first did")
	}
	return oi
}

func (x *storeT) loadOwned(oi session.OwnerIndex, owner string) ([]session.OwnedRecord, error) {
	x.t.Helper()
	return do(x, desc("LoadOwned", owner), func(ctx context.Context) ([]session.OwnedRecord, error) { return oi.LoadOwned(ctx, owner) })
}

// owned is a record of an owner check: where it is and what it holds.
type owned struct {
	key string
	w   want
}

// label names a key or owner for messages.
func (x *ownerT) label(s string) string {
	if l, ok := x.labels[s]; ok {
		return fmt.Sprintf("%s (%s)", short(s), l)
	}
	return short(s)
}

// newKey returns a key for label, remembered for messages.
func (x *ownerT) newKey(label string) string {
	k := x.key(label)
	x.labels[k] = label
	return k
}

// newOwner returns an owner key for label, remembered for messages.
func (x *ownerT) newOwner(label string) string {
	o := ownerKey(x.ns + "\x00" + label)
	x.labels[o] = "owner " + label
	return o
}

// add creates a record owned by owner ("" for none) and returns it.
func (x *ownerT) add(st session.Store, label, owner string, atime time.Time, data []byte) owned {
	x.t.Helper()
	k := x.newKey(label)
	w := want{data: data, atime: atime, created: atime.Add(-time.Hour), version: 1, owner: owner, hasOwner: true}
	x.mustCreate(st, k, w)
	return owned{key: k, w: w}
}

// listProblems compares what LoadOwned returned with the records that
// must be listed, and nothing else.
func (x *ownerT) listProblems(got []session.OwnedRecord, wants []owned, why func(key string) string) []string {
	var p []string
	seen := map[string]bool{}
	for _, r := range got {
		if seen[r.Key] {
			p = append(p, fmt.Sprintf("lists %s twice", x.label(r.Key)))
			continue
		}
		seen[r.Key] = true
		i := slices.IndexFunc(wants, func(o owned) bool { return o.key == r.Key })
		if i < 0 {
			reason := "a record that is not this owner's"
			if why != nil {
				reason = why(r.Key)
			}
			p = append(p, fmt.Sprintf("lists %s, %s (its Owner says %q)", x.label(r.Key), reason, r.Record.Owner))
			continue
		}
		if q := x.s.recordProblems(r.Record, wants[i].w); len(q) > 0 {
			p = append(p, fmt.Sprintf("lists %s not as Load returns it: %s", x.label(r.Key), strings.Join(q, "; ")))
		}
	}
	for _, o := range wants {
		if !seen[o.key] {
			p = append(p, fmt.Sprintf("misses %s", x.label(o.key)))
		}
	}
	sort.Strings(p)
	return p
}

// expectOwned checks that LoadOwned(owner) on oi returns exactly wants,
// each as Load returns it.
func (x *ownerT) expectOwned(oi session.OwnerIndex, owner string, wants []owned, why func(key string) string, when string) bool {
	x.t.Helper()
	got, err := x.loadOwned(oi, owner)
	if err != nil {
		x.errorf("%s: LoadOwned(%s): got error %v, want %d records%s", when, x.label(owner), err, len(wants), emptyHint(len(wants), err))
		return false
	}
	if p := x.listProblems(got, wants, why); len(p) > 0 {
		x.errorf("%s: LoadOwned(%s) returned %d records, want %d:\n\t%s", when, x.label(owner), len(got), len(wants), strings.Join(p, "\n\t"))
		return false
	}
	return true
}

func emptyHint(n int, err error) string {
	if n == 0 && errors.Is(err, session.ErrNotFound) {
		return " (an owner with no records has an empty list: return nil, not ErrNotFound)"
	}
	return ""
}

// --- The checks --------------------------------------------------------------

func checkOwnerRoundTrip(f *fixture) {
	x := ownerFixture(f)
	a, b, none := x.newOwner("a"), x.newOwner("b"), x.newOwner("nobody")
	at := timeAt(0)
	a1 := x.add(x.st, "a's first", a, at, []byte("a's first\x00binary \xff"))
	a2 := x.add(x.st, "a's second, empty", a, at.Add(time.Second), []byte{})
	b1 := x.add(x.st, "b's", b, at.Add(2*time.Second), []byte("b's"))
	free := x.add(x.st, "ownerless", "", at.Add(3*time.Second), []byte("nobody's"))
	for _, o := range []owned{a1, a2, b1, free} {
		if !x.expect(x.st, o.key, o.w, fmt.Sprintf("Load of %s after Create with Owner %q (Create stores the Owner; Load returns it)", x.label(o.key), o.w.owner)) {
			return
		}
	}
	x.expectOwned(x.oi, a, []owned{a1, a2}, nil, "after Create")
	x.expectOwned(x.oi, b, []owned{b1}, nil, "after Create")
	x.expectOwned(x.oi, none, nil, nil, "an owner with no records (an empty list and a nil error)")
}

func checkOwnerUpdate(f *fixture) {
	x := ownerFixture(f)
	a, b := x.newOwner("a"), x.newOwner("b")
	o := x.add(x.st, "moving", a, timeAt(0), []byte("v1"))
	stay := x.add(x.st, "staying with a", a, timeAt(0), []byte("stays"))
	where := map[string]string{}
	why := func(k string) string {
		if r, ok := where[k]; ok {
			return r
		}
		return "a record that is not this owner's"
	}
	steps := []struct {
		owner, what string
	}{
		{a, "an Update keeping the Owner"},
		{b, "an Update to another Owner"},
		{"", "an Update clearing the Owner"},
		{a, "an Update setting the Owner again"},
	}
	for i, st := range steps {
		prev := o.w.owner
		o.w.data, o.w.atime, o.w.version, o.w.owner = []byte(fmt.Sprint("v", i+2)), timeAt(time.Duration(i+1)*time.Minute), uint64(i+2), st.owner
		if err := x.update(x.st, o.key, session.Record{Data: o.w.data, ATime: o.w.atime, Version: uint64(i + 1), Owner: st.owner}); !x.expectNil(err, st.what) {
			return
		}
		if !x.expect(x.st, o.key, o.w, "after "+st.what+" (Update replaces the Owner with Data and ATime)") {
			return
		}
		if prev != st.owner && prev != "" {
			where[o.key] = fmt.Sprintf("which %s moved away from this owner: the index must follow every owner change", st.what)
		}
		wantA, wantB := []owned{stay}, []owned(nil)
		switch st.owner {
		case a:
			wantA = append(wantA, o)
		case b:
			wantB = append(wantB, o)
		}
		if !x.expectOwned(x.oi, a, wantA, why, "after "+st.what) || !x.expectOwned(x.oi, b, wantB, why, "after "+st.what) {
			return
		}
	}
	// A refused Update changes neither the record nor the index.
	err := x.update(x.st, o.key, session.Record{Data: []byte("stale"), ATime: timeAt(time.Hour), Version: 1, Owner: b})
	x.expectErr(err, session.ErrConflict, "Update with a stale Version and another Owner")
	where[o.key] = "which a refused Update (stale Version) tried to move here: a refused Update changes nothing, the index included"
	if !x.expect(x.st, o.key, o.w, "after a refused Update to another Owner") || !x.expectOwned(x.oi, b, nil, why, "after a refused Update to this owner") {
		return
	}
	x.expectOwned(x.oi, a, []owned{stay, o}, why, "after a refused Update to another owner")
	missing := x.newKey("never created")
	err = x.update(x.st, missing, session.Record{Data: []byte("ghost"), ATime: timeAt(0), Version: 1, Owner: b})
	x.expectErr(err, session.ErrNotFound, "Update with an Owner of a key never created")
	where[missing] = "which was never created (an Update of it failed with ErrNotFound)"
	x.expectOwned(x.oi, b, nil, why, "after an Update of a missing key to this owner")
}

func checkOwnerTouch(f *fixture) {
	x := ownerFixture(f)
	a := x.newOwner("a")
	o := x.add(x.st, "touched", a, timeAt(0), []byte("touched"))
	for i, at := range []time.Time{timeAt(time.Hour), timeAt(30 * time.Minute), timeAt(30 * time.Minute)} {
		o.w.atime = at
		if err := x.touch(x.st, o.key, at); !x.expectNil(err, "Touch") {
			return
		}
		if !x.expect(x.st, o.key, o.w, fmt.Sprintf("after Touch #%d (Touch keeps the Owner)", i+1)) {
			return
		}
		if !x.expectOwned(x.oi, a, []owned{o}, nil, fmt.Sprintf("after Touch #%d (LoadOwned returns records as Load does: the new ATime)", i+1)) {
			return
		}
	}
}

// checkOwnerExact lists owners whose keys a careless index confuses:
// prefixes of each other, LIKE wildcards, case, and hashes differing in
// their last character.
func checkOwnerExact(f *fixture) {
	x := ownerFixture(f)
	h := ownerKey("exact")
	cut := h[:len(h)-1]
	owners := []string{"ab", "abc", "abcd", "aBc", "a_c", "axc", "_", "a", "b", "-", cut + "A", cut + "B", cut + "_", cut}
	recs := map[string][]owned{}
	at := timeAt(0)
	for i, o := range owners {
		for j := range 1 + i%3 {
			r := x.add(x.st, fmt.Sprintf("record %d of owner %q", j, o), o, at.Add(time.Duration(i)*time.Second), []byte(fmt.Sprintf("%d of %s", j, o)))
			recs[o] = append(recs[o], r)
		}
	}
	x.add(x.st, "ownerless record", "", at, []byte("nobody's"))
	ownerOf := map[string]string{}
	for o, rs := range recs {
		for _, r := range rs {
			ownerOf[r.key] = o
		}
	}
	for _, o := range owners {
		why := func(k string) string {
			if other, ok := ownerOf[k]; ok {
				return fmt.Sprintf("owned by %q: owners are compared with =, byte for byte (never LIKE, where '_' matches any character, nor a prefix match, nor case-folded)", other)
			}
			return "a record with no owner"
		}
		if !x.expectOwned(x.oi, o, recs[o], why, fmt.Sprintf("owner %q among similar owner keys", o)) {
			return
		}
	}
	x.expectOwned(x.oi, ownerKey("nobody"), nil, nil, "an owner with no records among many")
}

// checkOwnerNamespace lists one owner in two namespaces over the same
// storage: each lists only its own records.
func checkOwnerNamespace(f *fixture) {
	x := ownerFixture(f)
	otherNS, other := x.neighbour()
	oo := x.index(other)
	a := ownerKey("shared owner")
	x.labels[a] = "an owner in both namespaces"
	mine := x.add(x.st, "shared key", a, timeAt(0), []byte("in "+x.ns))
	mine2 := x.add(x.st, "mine only", a, timeAt(0), []byte("only in "+x.ns))
	theirs := owned{key: mine.key, w: want{data: []byte("in " + otherNS), atime: timeAt(time.Second), created: timeAt(0), version: 1, owner: a, hasOwner: true}}
	x.mustCreate(other, theirs.key, theirs.w)
	why := func(string) string {
		return "a record of another namespace over the same storage: LoadOwned must be limited to its own namespace"
	}
	x.expectOwned(x.oi, a, []owned{mine, mine2}, why, "in the first namespace, with the same owner in another")
	x.expectOwned(oo, a, []owned{theirs}, why, fmt.Sprintf("in namespace %q, with the same owner in another", otherNS))
	x.expectNil(x.del(other, theirs.key), "Delete in the other namespace")
	x.expectOwned(x.oi, a, []owned{mine, mine2}, why, "after Delete of the same key in the other namespace")
}

func checkOwnerDelete(f *fixture) {
	x := ownerFixture(f)
	a, b := x.newOwner("a"), x.newOwner("b")
	rs := []owned{
		x.add(x.st, "first", a, timeAt(0), []byte("first")),
		x.add(x.st, "second", a, timeAt(0), []byte("second")),
		x.add(x.st, "third", a, timeAt(0), []byte("third")),
	}
	deleted := map[string]bool{}
	why := func(k string) string {
		if deleted[k] {
			return "deleted before LoadOwned was called: Delete must remove the record from the owner's index too"
		}
		return "a record that is not this owner's"
	}
	for i, r := range rs {
		if !x.expectNil(x.del(x.st, r.key), "Delete") {
			return
		}
		deleted[r.key] = true
		if !x.expectOwned(x.oi, a, rs[i+1:], why, fmt.Sprintf("after Delete of %d of its %d records", i+1, len(rs))) {
			return
		}
	}
	// The key again, for another owner: an index still holding the key
	// under the first owner would list the new record there.
	re := owned{key: rs[1].key, w: want{data: []byte("reborn for b"), atime: timeAt(time.Hour), created: timeAt(time.Hour), version: 1, owner: b, hasOwner: true}}
	x.mustCreate(x.st, re.key, re.w)
	deleted[re.key] = false
	x.expectOwned(x.oi, a, nil, func(string) string {
		return "a key deleted from this owner and created again for another: Delete must remove the key from the owner's index"
	}, "after the deleted key was created again for another owner")
	x.expectOwned(x.oi, b, []owned{re}, nil, "the new owner of a key created again")
}

func checkOwnerCleanup(f *fixture) {
	x := ownerFixture(f)
	a, b := x.newOwner("a"), x.newOwner("b")
	cutoff := x.s.align(timeAt(24 * time.Hour))
	idle := cutoff.Add(-time.Hour)
	idle1 := x.add(x.st, "a's idle", a, idle, []byte("idle"))
	live := x.add(x.st, "a's live", a, cutoff, []byte("live"))
	x.add(x.st, "a's other idle", a, idle.Add(-time.Minute), []byte("idle"))
	x.add(x.st, "b's idle", b, idle, []byte("idle"))
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if n != 3 {
		x.errorf("Cleanup returned %d, want 3", n)
	}
	why := func(string) string {
		return "deleted by Cleanup before LoadOwned was called: Cleanup must remove what it deletes from the owner index too"
	}
	x.expectOwned(x.oi, a, []owned{live}, why, "after Cleanup")
	x.expectOwned(x.oi, b, nil, why, "after Cleanup")
	re := owned{key: idle1.key, w: want{data: []byte("reborn"), atime: cutoff, created: cutoff, version: 1, owner: b, hasOwner: true}}
	x.mustCreate(x.st, re.key, re.w)
	x.expectOwned(x.oi, a, []owned{live}, func(string) string {
		return "a key Cleanup deleted from this owner, created again for another: Cleanup must remove the key from the owner index"
	}, "after a cleaned-up key was created again for another owner")
}

// checkOwnerAliasing checks that LoadOwned returns Data the caller owns.
func checkOwnerAliasing(f *fixture) {
	x := ownerFixture(f)
	a, b := x.newOwner("a"), x.newOwner("b")
	ra := x.add(x.st, "a's", a, timeAt(0), []byte("a's data, longer than b's"))
	rb := x.add(x.st, "b's", b, timeAt(0), []byte("b's data"))
	got, err := x.loadOwned(x.oi, a)
	if err != nil || len(got) != 1 {
		x.fatalf("LoadOwned: got %d records and error %v, want 1 and nil", len(got), err)
	}
	for i := range got[0].Record.Data {
		got[0].Record.Data[i] = 'Z'
	}
	if !x.expect(x.st, ra.key, ra.w, "after the caller overwrote the Data LoadOwned returned (it must return a copy)") {
		return
	}
	if !x.expectOwned(x.oi, a, []owned{ra}, nil, "after the caller overwrote the Data an earlier LoadOwned returned") {
		return
	}
	kept, err := x.loadOwned(x.oi, a)
	if err != nil || len(kept) != 1 {
		x.fatalf("LoadOwned: got %d records and error %v, want 1 and nil", len(kept), err)
	}
	if _, err := x.loadOwned(x.oi, b); err != nil {
		x.fatalf("LoadOwned: %v", err)
	}
	if _, err := x.load(x.st, rb.key); err != nil {
		x.fatalf("Load: %v", err)
	}
	x.mustUpdate(x.st, ra.key, want{data: bytes.Repeat([]byte("N"), 40), atime: timeAt(time.Minute), owner: a}, 1)
	if !bytes.Equal(kept[0].Record.Data, ra.w.data) {
		x.errorf("the Data of an earlier LoadOwned changed when other calls returned (LoadOwned of another owner, Load, Update): got %q, want %q. LoadOwned must return bytes the caller owns: copy out of any buffer the store keeps or reuses", kept[0].Record.Data, ra.w.data)
	}
}

// checkOwnerSecondInstance checks that another instance's LoadOwned sees
// the first's writes within Staleness.
func checkOwnerSecondInstance(f *fixture) {
	x := ownerFixture(f)
	second := x.index(x.open())
	a, b := x.newOwner("a"), x.newOwner("b")
	cutoff := x.s.align(timeAt(24 * time.Hour))
	sees := func(owner string, wants []owned, when string) {
		x.t.Helper()
		problem := x.eventually(func() string {
			got, err := x.loadOwned(second, owner)
			if err != nil {
				return fmt.Sprintf("LoadOwned: error %v", err)
			}
			return strings.Join(x.listProblems(got, wants, nil), "; ")
		})
		if problem != "" {
			x.errorf("second instance, LoadOwned(%s) %s: did not reflect the first instance's write %s: %s", x.label(owner), when, x.staleNote(), problem)
		}
	}
	r1 := x.add(x.st, "first", a, cutoff, []byte("first"))
	r2 := x.add(x.st, "second", a, cutoff, []byte("second"))
	r3 := x.add(x.st, "idle", a, cutoff.Add(-time.Hour), []byte("idle"))
	sees(a, []owned{r1, r2, r3}, "after the first created three records")
	r2.w.data, r2.w.version, r2.w.owner = []byte("moved"), 2, b
	x.mustUpdate(x.st, r2.key, r2.w, 1)
	sees(a, []owned{r1, r3}, "after the first moved a record to another owner")
	sees(b, []owned{r2}, "after the first moved a record to this owner")
	x.expectNil(x.del(x.st, r1.key), "Delete")
	sees(a, []owned{r3}, "after the first deleted a record")
	if _, err := x.cleanup(x.st, cutoff); !x.expectNil(err, "Cleanup") {
		return
	}
	sees(a, nil, "after the first's Cleanup")
	sees(b, []owned{r2}, "after the first's Cleanup, which had to keep it")
}

// Sizes of Store/Owner/Concurrent.
const (
	ownerRounds  = 6
	ownerStable  = 4
	ownerChurn   = 6 // records per kind of change, per round
	ownerUpdates = 24
)

// checkOwnerConcurrent lists one owner over and over while other
// goroutines update its records (keeping the owner), delete some, move
// some to another owner, clean some up and create new ones. Each listing
// must show every record that stayed the owner's throughout, each record
// whose Create returned before it started, and none whose Delete, move or
// Cleanup returned before it started.
func checkOwnerConcurrent(f *fixture) {
	x := ownerFixture(f)
	cutoff := x.s.align(timeAt(24 * time.Hour))
	var l errList
	for round := range ownerRounds {
		o, p := x.newOwner(fmt.Sprint("o", round)), x.newOwner(fmt.Sprint("p", round))
		mk := func(kind string, n int, owner string, atime time.Time, create bool) []string {
			keys := make([]string, n)
			for i := range keys {
				keys[i] = x.newKey(fmt.Sprintf("round %d %s %d", round, kind, i))
				if create {
					x.mustCreate(x.st, keys[i], want{data: []byte(kind), atime: atime, created: atime, owner: owner})
				}
			}
			return keys
		}
		stable := mk("stable", ownerStable, o, cutoff, true)
		doomed := mk("deleted", ownerChurn, o, cutoff, true)
		movers := mk("moved", ownerChurn, o, cutoff, true)
		idle := mk("cleaned up", ownerChurn, o, cutoff.Add(-time.Hour), true)
		fresh := mk("created", ownerChurn, o, cutoff, false)
		var (
			deleted, moved, cleaned, created [ownerChurn]atomic.Bool
			writers                          atomic.Int32
		)
		kindOf := map[string]string{}
		for kind, keys := range map[string][]string{"stable": stable, "deleted": doomed, "moved": movers, "cleaned up": idle, "created": fresh} {
			for _, k := range keys {
				kindOf[k] = kind
			}
		}
		const nWriters = 5
		writers.Store(nWriters)
		x.race(nWriters+2, nil, func(c *caller) {
			write := func(what string, fn func(ctx context.Context) error) bool {
				err := c.call(what, fn)
				if l.brokenCall(err) {
					return false
				}
				if err != nil {
					l.add(what, "round %d: %s while the owner was listed: %v", round+1, what, err)
					return false
				}
				return true
			}
			switch c.g {
			case 0: // updates the stable records, keeping their owner
				defer writers.Add(-1)
				versions := make([]uint64, ownerStable)
				for i := range ownerUpdates {
					j := i % ownerStable
					k := stable[j]
					v := versions[j] + 1
					if !write(desc("Update", k), func(ctx context.Context) error {
						return x.st.Update(ctx, k, session.Record{Data: []byte(fmt.Sprint("stable v", v+1)), ATime: cutoff.Add(time.Duration(i) * time.Second), Version: v, Owner: o})
					}) {
						return
					}
					versions[j] = v
				}
			case 1:
				defer writers.Add(-1)
				for i, k := range doomed {
					if !write(desc("Delete", k), func(ctx context.Context) error { return x.st.Delete(ctx, k) }) {
						return
					}
					deleted[i].Store(true)
				}
			case 2:
				defer writers.Add(-1)
				for i, k := range movers {
					if !write(desc("Update", k), func(ctx context.Context) error {
						return x.st.Update(ctx, k, session.Record{Data: []byte("moved"), ATime: cutoff, Version: 1, Owner: p})
					}) {
						return
					}
					moved[i].Store(true)
				}
			case 3:
				defer writers.Add(-1)
				if write("Cleanup("+fmtTime(cutoff)+")", func(ctx context.Context) error {
					_, err := x.st.Cleanup(ctx, cutoff)
					return err
				}) {
					for i := range cleaned {
						cleaned[i].Store(true)
					}
				}
			case 4:
				defer writers.Add(-1)
				for i, k := range fresh {
					if !write(desc("Create", k), func(ctx context.Context) error {
						return x.st.Create(ctx, k, session.Record{Data: []byte("created"), ATime: cutoff, Created: cutoff, Owner: o})
					}) {
						return
					}
					created[i].Store(true)
				}
			default: // lists the owner until the writers are done, and once more
				for last := false; !last; {
					last = writers.Load() == 0
					var gone [3][ownerChurn]bool // deleted, moved, cleaned up before the call
					var born [ownerChurn]bool
					for i := range ownerChurn {
						gone[0][i], gone[1][i], gone[2][i] = deleted[i].Load(), moved[i].Load(), cleaned[i].Load()
						born[i] = created[i].Load()
					}
					var got []session.OwnedRecord
					err := c.call(desc("LoadOwned", o), func(ctx context.Context) error {
						var err error
						got, err = x.oi.LoadOwned(ctx, o)
						return err
					})
					if l.brokenCall(err) {
						return
					}
					if err != nil {
						l.add("LoadOwned", "round %d: LoadOwned while the owner's records were written: %v", round+1, err)
						return
					}
					listed := map[string]bool{}
					for _, r := range got {
						listed[r.Key] = true
						if r.Record.Owner != o {
							l.add("other owner", "round %d: LoadOwned(%s) listed %s with Owner %q: every listed record is the owner's", round+1, x.label(o), x.label(r.Key), r.Record.Owner)
						}
						if _, ok := kindOf[r.Key]; !ok {
							l.add("unknown", "round %d: LoadOwned listed %s, which is no record of this owner", round+1, x.label(r.Key))
						}
					}
					for _, k := range stable {
						if !listed[k] {
							l.add("missed stable", "round %d: LoadOwned(%s) missed %s, a record that was the owner's throughout (only Updates keeping its Owner ran on it): the index must be updated atomically with the record, never emptied and refilled, so that every listing sees each live record", round+1, x.label(o), x.label(k))
						}
					}
					for i := range ownerChurn {
						for kind, keys := range [3][]string{doomed, movers, idle} {
							if gone[kind][i] && listed[keys[i]] {
								l.add("listed gone", "round %d: LoadOwned(%s) listed %s, although its %s had returned before LoadOwned was called: the owner index must change with the record, at once", round+1, x.label(o), x.label(keys[i]), [3]string{"Delete", "Update to another owner", "Cleanup"}[kind])
							}
						}
						if born[i] && !listed[fresh[i]] {
							l.add("missed created", "round %d: LoadOwned(%s) missed %s, whose Create had returned before LoadOwned was called", round+1, x.label(o), x.label(fresh[i]))
						}
					}
				}
			}
		})
	}
	x.report(&l)
}

// checkOwnerInvalidKey calls LoadOwned with owner keys the manager never
// makes, including SQL LIKE and glob patterns: each is refused with
// ErrInvalidKey or lists nothing, and never another owner's records.
func checkOwnerInvalidKey(f *fixture) {
	x := ownerFixture(f)
	a := x.newOwner("a")
	x.add(x.st, "a's", a, timeAt(0), []byte("a's"))
	x.add(x.st, "single-character owner", "b", timeAt(0), []byte("b's"))
	x.add(x.st, "ownerless", "", timeAt(0), []byte("nobody's"))
	invalid := []string{"", "%", "*", "?", "a%", "%_%", "[a-z]*", "' OR '1'='1", "../x", "a/b", "a b", "a.b", "é", "a\x00b", strings.Repeat("o", session.MaxKeyLen+1)}
	for _, o := range invalid {
		got, err := x.loadOwned(x.oi, o)
		switch {
		case errors.Is(err, session.ErrInvalidKey):
		case err != nil:
			x.errorf("LoadOwned(%q), an invalid owner key: got error %v, want an error wrapping session.ErrInvalidKey (or an empty list)", o, err)
		case len(got) > 0:
			var keys []string
			for _, r := range got {
				keys = append(keys, fmt.Sprintf("%s with Owner %q", x.label(r.Key), r.Record.Owner))
			}
			x.errorf("LoadOwned(%q), an invalid owner key, listed %d records: %s. Owner keys are never patterns: refuse invalid ones with session.ErrInvalidKey (see session.ValidKey) and compare owners with =", o, len(got), strings.Join(keys, ", "))
		}
	}
	// An invalid Owner in a record: refused, or kept as it is.
	k := x.newKey("invalid owner")
	err := x.create(x.st, k, session.Record{Data: []byte("x"), ATime: timeAt(0), Created: timeAt(0), Owner: "%"})
	switch {
	case errors.Is(err, session.ErrInvalidKey):
		x.expectMissing(x.st, k, "after Create refused an invalid Owner")
	case err != nil:
		x.errorf("Create with the invalid Owner %q: got error %v, want an error wrapping session.ErrInvalidKey, or success", "%", err)
	default:
		x.expect(x.st, k, want{data: []byte("x"), atime: timeAt(0), created: timeAt(0), version: 1, owner: "%", hasOwner: true}, "after Create accepted the invalid Owner \"%\" (then it is kept as given)")
	}
	x.expectOwned(x.oi, a, []owned{{key: x.key("a's"), w: want{data: []byte("a's"), atime: timeAt(0), created: timeAt(-time.Hour), version: 1, owner: a, hasOwner: true}}}, nil, "a valid owner, after the invalid ones")
}
