package conformance

import (
	"errors"
	"fmt"
	"strings"
	"time"

	session "github.com/websession/websession/core"
)

// The "Store/Namespace/..." subtests open two namespaces over the same
// storage, as two applications share one Redis server or one table, and
// check that each store's calls leave the other's records alone. The
// second namespace is the first with "_k" appended, and some keys of the
// first begin with "_k": a store that joins namespace and key without a
// separator the alphabet cannot hold ("ns" + "_kabc" == "ns_k" + "abc")
// mixes them up.

// neighbour opens a store over the namespace x.ns + "_k".
func (x *storeT) neighbour() (string, session.Store) {
	x.t.Helper()
	ns := x.ns + "_k"
	if len(ns) > 40 {
		x.t.Fatalf("conformance: namespace %q too long", ns)
	}
	return ns, x.openNS(ns)
}

// collidingKeys are keys of the first namespace that, joined to it with
// "", "_" or "-", spell the key "abc" of the neighbour.
var collidingKeys = []string{"_kabc", "_k_abc", "_k-abc"}

// nsRecord is a record the namespace checks create and follow.
type nsRecord struct {
	st   session.Store
	ns   string
	key  string
	w    want
	gone bool
}

// nsRecords creates, in each of the two namespaces, a record under one
// shared key and records under keys that collide when a store joins
// namespace and key naively; all with the given ATime.
func (x *storeT) nsRecords(other session.Store, otherNS string, atime time.Time) []*nsRecord {
	x.t.Helper()
	shared := x.key("shared")
	recs := []*nsRecord{
		{st: x.st, ns: x.ns, key: shared},
		{st: other, ns: otherNS, key: shared},
		{st: other, ns: otherNS, key: "abc"},
	}
	for _, k := range collidingKeys {
		recs = append(recs, &nsRecord{st: x.st, ns: x.ns, key: k})
	}
	for i, r := range recs {
		r.w = want{data: []byte(fmt.Sprintf("%s in %s", r.key, r.ns)), atime: atime.Add(time.Duration(i) * x.s.step), created: atime.Add(-time.Hour), version: 1}
		err := x.create(r.st, r.key, r.w.record())
		if errors.Is(err, session.ErrExists) {
			x.fatalf("Create(%q) in namespace %q: got %v, though the key exists only %s. Namespaces over one storage are separate key spaces: keep the namespace in its own column, or join it to the key with a separator no key holds (\"ns:key\"), never by plain concatenation", r.key, r.ns, err, x.whereElse(recs[:i], r))
		}
		if err != nil {
			x.fatalf("Create(%q) in namespace %q: %v", r.key, r.ns, err)
		}
	}
	return recs
}

// whereElse says where the key of r already exists, for a message: in
// another namespace, or nowhere.
func (x *storeT) whereElse(before []*nsRecord, r *nsRecord) string {
	var parts []string
	for _, b := range before {
		if b.key == r.key {
			return fmt.Sprintf("in namespace %q", b.ns)
		}
		if b.ns != r.ns {
			parts = append(parts, fmt.Sprintf("%q in %q", b.key, b.ns))
		}
	}
	return "in no namespace: only other keys were created, in another namespace (" + strings.Join(parts, ", ") + ")"
}

// nsVerify checks every record after a call made in one namespace.
func (x *storeT) nsVerify(recs []*nsRecord, after string) bool {
	x.t.Helper()
	for _, r := range recs {
		got, err := x.load(r.st, r.key)
		switch {
		case r.gone && errors.Is(err, session.ErrNotFound):
		case r.gone && err == nil:
			x.errorf("%s: the record %q of namespace %q is still there, want it gone", after, r.key, r.ns)
			return false
		case r.gone:
			x.errorf("%s: Load(%q) in namespace %q: %v, want ErrNotFound", after, r.key, r.ns, err)
			return false
		case errors.Is(err, session.ErrNotFound):
			x.errorf("%s, the record %q of namespace %q is gone: a call in one namespace deleted another's record. Every query or key a store touches must be limited to its own namespace (WHERE namespace = ?, a key prefix with a separator no key holds, SCAN MATCH prefix*)", after, r.key, r.ns)
			return false
		case err != nil:
			x.errorf("%s: Load(%q) in namespace %q: %v", after, r.key, r.ns, err)
			return false
		default:
			if p := x.s.recordProblems(got, r.w); len(p) > 0 {
				x.errorf("%s, the record %q of namespace %q changed: %s. A call in one namespace reached another's record: limit every query or key to the store's own namespace", after, r.key, r.ns, strings.Join(p, "; "))
				return false
			}
		}
	}
	return true
}

func checkNamespaceKeys(f *fixture) {
	x := storeFixture(f)
	otherNS, other := x.neighbour()
	recs := x.nsRecords(other, otherNS, timeAt(0))
	if !x.nsVerify(recs, "after creating the same key in two namespaces") {
		return
	}
	for i, r := range recs {
		if r.st != x.st {
			continue
		}
		r.w.data, r.w.atime, r.w.version = []byte("updated in "+r.ns), timeAt(time.Hour+time.Duration(i)), 2
		if err := x.update(r.st, r.key, session.Record{Data: r.w.data, ATime: r.w.atime, Version: 1}); !x.expectNil(err, fmt.Sprintf("Update(%q) in namespace %q", r.key, r.ns)) {
			return
		}
		if !x.nsVerify(recs, fmt.Sprintf("after Update(%q) in namespace %q", r.key, r.ns)) {
			return
		}
	}
	for i, r := range recs {
		if r.st != other {
			continue
		}
		r.w.atime = timeAt(2*time.Hour + time.Duration(i))
		if err := x.touch(r.st, r.key, r.w.atime); !x.expectNil(err, fmt.Sprintf("Touch(%q) in namespace %q", r.key, r.ns)) {
			return
		}
		if !x.nsVerify(recs, fmt.Sprintf("after Touch(%q) in namespace %q", r.key, r.ns)) {
			return
		}
	}
}

func checkNamespaceDelete(f *fixture) {
	x := storeFixture(f)
	otherNS, other := x.neighbour()
	recs := x.nsRecords(other, otherNS, timeAt(0))
	for _, i := range []int{0, 2, 3} { // shared in the first, "abc" in the other, "_kabc" in the first
		r := recs[i]
		r.gone = true
		if err := x.del(r.st, r.key); !x.expectNil(err, fmt.Sprintf("Delete(%q) in namespace %q", r.key, r.ns)) {
			return
		}
		if !x.nsVerify(recs, fmt.Sprintf("after Delete(%q) in namespace %q", r.key, r.ns)) {
			return
		}
	}
}

func checkNamespaceCleanup(f *fixture) {
	x := storeFixture(f)
	otherNS, other := x.neighbour()
	idle := x.s.align(timeAt(0))
	recs := x.nsRecords(other, otherNS, idle)
	cutoff := x.s.align(timeAt(time.Hour))
	mine := 0
	for _, r := range recs {
		if r.st == x.st {
			r.gone = true
			mine++
		}
	}
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if !x.nsVerify(recs, fmt.Sprintf("after Cleanup(%s) in namespace %q, whose own records were all idle", fmtTime(cutoff), x.ns)) {
		return
	}
	if n != mine {
		x.errorf("Cleanup in namespace %q returned %d, want %d: it must count only its own namespace's records", x.ns, n, mine)
	}
	for _, r := range recs {
		r.gone = true
	}
	n, err = x.cleanup(other, cutoff)
	if x.expectNil(err, "Cleanup in the other namespace") && n != len(recs)-mine {
		x.errorf("Cleanup in namespace %q returned %d, want %d (its own records, all idle)", otherNS, n, len(recs)-mine)
	}
	x.nsVerify(recs, "after Cleanup in both namespaces")
}
