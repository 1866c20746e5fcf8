package conformance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"time"

	session "github.com/websession/websession/core"
)

// storeT is the fixture of a "Store/..." subtest: a store over a fresh
// namespace and the calls to drive it.
type storeT struct {
	*fixture
	ns string
	st session.Store // the first instance over ns
}

func storeFixture(f *fixture) *storeT {
	x := &storeT{fixture: f, ns: f.s.namespace(f.t)}
	x.st = x.open()
	return x
}

// open returns an instance over the fixture's namespace: the first call a
// fresh store, later calls a second instance over the same storage.
func (x *storeT) open() session.Store {
	x.t.Helper()
	st := x.s.h.NewStore(x.t, x.ns)
	if st == nil {
		x.t.Fatalf("Harness.NewStore(%q) returned a nil store", x.ns)
	}
	return st
}

// key returns a store key like the manager's (43 characters of base64url),
// distinct for each label, and the same in every run so that a failure
// reproduces.
func (x *storeT) key(label string) string {
	sum := sha256.Sum256([]byte(x.c.name + "\x00" + label))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// stop ends the subtest if err is a hung or panicking call.
func (x *storeT) stop(err error) {
	x.t.Helper()
	if isBroken(err) {
		x.t.Fatal(err)
	}
}

// do runs one store call under the suite's deadline and watchdog, ending
// the subtest if the call hung or panicked.
func do[T any](x *storeT, op string, fn func(ctx context.Context) (T, error)) (T, error) {
	x.t.Helper()
	v, err := call(x.s, context.Background(), op, fn)
	x.stop(err)
	return v, err
}

// errOnly adapts a call that returns only an error to do.
func errOnly(fn func(ctx context.Context) error) func(ctx context.Context) (struct{}, error) {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }
}

func (x *storeT) load(st session.Store, key string) (session.Record, error) {
	x.t.Helper()
	return do(x, "Load", func(ctx context.Context) (session.Record, error) { return st.Load(ctx, key) })
}

func (x *storeT) create(st session.Store, key string, rec session.Record) error {
	x.t.Helper()
	_, err := do(x, "Create", errOnly(func(ctx context.Context) error { return st.Create(ctx, key, rec) }))
	return err
}

func (x *storeT) update(st session.Store, key string, rec session.Record) error {
	x.t.Helper()
	_, err := do(x, "Update", errOnly(func(ctx context.Context) error { return st.Update(ctx, key, rec) }))
	return err
}

func (x *storeT) touch(st session.Store, key string, atime time.Time) error {
	x.t.Helper()
	_, err := do(x, "Touch", errOnly(func(ctx context.Context) error { return st.Touch(ctx, key, atime) }))
	return err
}

func (x *storeT) del(st session.Store, key string) error {
	x.t.Helper()
	_, err := do(x, "Delete", errOnly(func(ctx context.Context) error { return st.Delete(ctx, key) }))
	return err
}

func (x *storeT) cleanup(st session.Store, cutoff time.Time) (int, error) {
	x.t.Helper()
	return do(x, "Cleanup", func(ctx context.Context) (int, error) { return st.Cleanup(ctx, cutoff) })
}

// want is what a record must hold after a sequence of calls.
type want struct {
	data    []byte
	atime   time.Time
	created time.Time
	version uint64
}

func (w want) record() session.Record {
	return session.Record{Data: w.data, ATime: w.atime, Created: w.created, Version: w.version}
}

// mustCreate creates rec under key, ending the subtest if that fails: the
// check that called it is about something else.
func (x *storeT) mustCreate(st session.Store, key string, w want) {
	x.t.Helper()
	if err := x.create(st, key, w.record()); err != nil {
		x.fatalf("Create(%s) of a new key: got error %v, want nil", short(key), err)
	}
}

func (x *storeT) mustUpdate(st session.Store, key string, w want, version uint64) {
	x.t.Helper()
	rec := w.record()
	rec.Version = version
	if err := x.update(st, key, rec); err != nil {
		x.fatalf("Update(%s, Version %d) of a record at Version %d: got error %v, want nil", short(key), version, version, err)
	}
}

// expect loads key and reports every way the record differs from w. It
// returns whether the record matched.
func (x *storeT) expect(st session.Store, key string, w want, when string) bool {
	x.t.Helper()
	rec, err := x.load(st, key)
	if err != nil {
		x.errorf("%s: Load(%s): got error %v, want the record (Version %d)", when, short(key), err, w.version)
		return false
	}
	problems := x.s.recordProblems(rec, w)
	if len(problems) > 0 {
		x.errorf("%s: Load(%s) returned a different record:\n\t%s", when, short(key), strings.Join(problems, "\n\t"))
		return false
	}
	return true
}

// expectMissing loads key and reports anything but ErrNotFound.
func (x *storeT) expectMissing(st session.Store, key string, when string) bool {
	x.t.Helper()
	rec, err := x.load(st, key)
	if !errors.Is(err, session.ErrNotFound) {
		if err == nil {
			x.errorf("%s: Load(%s): got a record (Version %d, %d bytes), want an error wrapping session.ErrNotFound", when, short(key), rec.Version, len(rec.Data))
		} else {
			x.errorf("%s: Load(%s): got error %v, want an error wrapping session.ErrNotFound", when, short(key), err)
		}
		return false
	}
	return true
}

// expectErr reports err unless it wraps target.
func (x *storeT) expectErr(err, target error, what string) bool {
	x.t.Helper()
	if errors.Is(err, target) {
		return true
	}
	if err == nil {
		x.errorf("%s: got nil error, want an error wrapping %s", what, sentinelName(target))
	} else {
		x.errorf("%s: got error %v, want an error wrapping %s (test with errors.Is)", what, err, sentinelName(target))
	}
	return false
}

func (x *storeT) expectNil(err error, what string) bool {
	x.t.Helper()
	if err != nil {
		x.errorf("%s: got error %v, want nil", what, err)
		return false
	}
	return true
}

func sentinelName(err error) string {
	switch err {
	case session.ErrNotFound:
		return "session.ErrNotFound"
	case session.ErrExists:
		return "session.ErrExists"
	case session.ErrConflict:
		return "session.ErrConflict"
	case session.ErrInvalidKey:
		return "session.ErrInvalidKey"
	case session.ErrTooLarge:
		return "session.ErrTooLarge"
	case context.Canceled:
		return "context.Canceled"
	case context.DeadlineExceeded:
		return "context.DeadlineExceeded"
	}
	return fmt.Sprintf("%v", err)
}

// recordProblems lists how rec differs from w, allowing for Precision.
func (s *suite) recordProblems(rec session.Record, w want) []string {
	var p []string
	if d := bytesProblem(rec.Data, w.data); d != "" {
		p = append(p, "Data: "+d)
	}
	if d := s.timeProblem(rec.ATime, w.atime); d != "" {
		p = append(p, "ATime: "+d)
	}
	if d := s.timeProblem(rec.Created, w.created); d != "" {
		p = append(p, "Created: "+d)
	}
	if rec.Version != w.version {
		p = append(p, fmt.Sprintf("Version: got %d, want %d", rec.Version, w.version))
	}
	return p
}

// timeProblem describes how got, a time read back, breaks the rule that
// times come back Equal to what was stored, up to Precision earlier and
// never later, in any zone.
func (s *suite) timeProblem(got, want time.Time) string {
	if got.IsZero() && !want.IsZero() {
		return fmt.Sprintf("got the zero time, want %s", fmtTime(want))
	}
	d := want.Sub(got)
	switch {
	case d < 0:
		return fmt.Sprintf("got %s, %v later than the %s stored: a store may lose precision by truncating, never move a time later (rounding up, or reading its own clock)", fmtTime(got), -d, fmtTime(want))
	case d > s.precision:
		return fmt.Sprintf("got %s, %v earlier than the %s stored, more than the declared Precision %v (a lost zone offset, its own clock, or coarser storage than declared)", fmtTime(got), d, fmtTime(want), s.precision)
	}
	return ""
}

func fmtTime(t time.Time) string {
	if t.Location() == time.UTC {
		return t.Format(time.RFC3339Nano)
	}
	return t.Format(time.RFC3339Nano) + " (" + t.UTC().Format(time.RFC3339Nano) + ")"
}

// bytesProblem describes how got differs from want without dumping
// megabytes.
func bytesProblem(got, want []byte) string {
	if bytes.Equal(got, want) {
		return ""
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	switch {
	case len(got) < len(want) && i == len(got):
		return fmt.Sprintf("got %d bytes, want %d: the data was cut short (truncation is never allowed: store it all or fail with ErrTooLarge)", len(got), len(want))
	case len(got) > len(want) && i == len(want):
		return fmt.Sprintf("got %d bytes, want %d: extra bytes after the data", len(got), len(want))
	}
	return fmt.Sprintf("got %d bytes, want %d; first difference at offset %d: got %s, want %s", len(got), len(want), i, excerpt(got, i), excerpt(want, i))
}

func excerpt(b []byte, i int) string {
	end := min(len(b), i+16)
	if i >= len(b) {
		return "end of data"
	}
	return fmt.Sprintf("%q", b[i:end])
}

// short abbreviates a key for messages.
func short(key string) string {
	if len(key) <= 16 {
		return fmt.Sprintf("%q", key)
	}
	return fmt.Sprintf("%q", key[:12]+"…")
}

// timeAt returns Epoch+offset: an instant with sub-microsecond digits, in a
// zone that is not UTC, decades from today. A store that reads its own
// clock, loses the zone or rounds is caught by any of them.
func timeAt(offset time.Duration) time.Time { return Epoch.Add(offset) }

// --- Load, Create, Update, Touch, Delete -------------------------------

func checkLoadMissing(f *fixture) {
	x := storeFixture(f)
	x.expectMissing(x.st, x.key("never"), "empty store")
	x.mustCreate(x.st, x.key("other"), want{data: []byte("other"), atime: timeAt(0), created: timeAt(0)})
	x.expectMissing(x.st, x.key("never"), "store holding another key")
}

func checkCreateRoundTrip(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := timeAt(-time.Hour)
	w := want{data: []byte(`{"v":1,"ip":"192.0.2.1","data":{"count":1}}`), atime: timeAt(0), created: created, version: 1}
	x.mustCreate(x.st, k, w)
	x.expect(x.st, k, w, "after Create")
	x.expect(x.st, k, w, "loading again")
}

func checkCreateVersionIgnored(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	w := want{data: []byte("v"), atime: timeAt(0), created: timeAt(0), version: 42}
	if err := x.create(x.st, k, w.record()); !x.expectNil(err, "Create with rec.Version 42") {
		return
	}
	w.version = 1
	x.expect(x.st, k, w, "after Create with rec.Version 42 (the stored Version is 1 whatever rec.Version says)")
}

func checkCreateExists(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	first := want{data: []byte("first"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, first)
	updated := want{data: []byte("updated"), atime: timeAt(time.Minute), created: first.created, version: 2}
	x.mustUpdate(x.st, k, updated, 1)
	again := want{data: []byte("second create"), atime: timeAt(2 * time.Minute), created: timeAt(2 * time.Minute)}
	err := x.create(x.st, k, again.record())
	x.expectErr(err, session.ErrExists, "Create on a taken key")
	x.expect(x.st, k, updated, "after the refused Create (it must change nothing)")
}

func checkUpdateRightVersion(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := timeAt(0)
	x.mustCreate(x.st, k, want{data: []byte("one"), atime: created, created: created})
	w2 := want{data: []byte("two"), atime: timeAt(time.Minute + 7), created: created, version: 2}
	if err := x.update(x.st, k, session.Record{Data: w2.data, ATime: w2.atime, Version: 1}); !x.expectNil(err, "Update with the stored Version 1") {
		return
	}
	x.expect(x.st, k, w2, "after Update from Version 1")
	w3 := want{data: []byte("three"), atime: timeAt(2*time.Minute + 3), created: created, version: 3}
	if err := x.update(x.st, k, session.Record{Data: w3.data, ATime: w3.atime, Version: 2}); !x.expectNil(err, "Update with the stored Version 2") {
		return
	}
	x.expect(x.st, k, w3, "after Update from Version 2")
}

func checkUpdateStaleVersion(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := timeAt(0)
	x.mustCreate(x.st, k, want{data: []byte("one"), atime: created, created: created})
	cur := want{data: []byte("two"), atime: timeAt(time.Minute), created: created, version: 2}
	x.mustUpdate(x.st, k, cur, 1)
	for _, v := range []uint64{1, 0, 3, 1 << 63} {
		err := x.update(x.st, k, session.Record{Data: []byte("stale write"), ATime: timeAt(time.Hour), Version: v})
		x.expectErr(err, session.ErrConflict, fmt.Sprintf("Update with Version %d of a record at Version 2", v))
		x.expect(x.st, k, cur, fmt.Sprintf("after the refused Update with Version %d (it must change nothing)", v))
	}
}

func checkUpdateMissing(f *fixture) {
	x := storeFixture(f)
	never := x.key("never")
	err := x.update(x.st, never, session.Record{Data: []byte("x"), ATime: timeAt(0), Created: timeAt(0), Version: 1})
	x.expectErr(err, session.ErrNotFound, "Update of a key never created")
	x.expectMissing(x.st, never, "after Update of a key never created (it must create nothing)")
	err = x.update(x.st, never, session.Record{Data: []byte("x"), ATime: timeAt(0), Created: timeAt(0), Version: 0})
	x.expectErr(err, session.ErrNotFound, "Update with Version 0 of a key never created")
	x.expectMissing(x.st, never, "after Update with Version 0 of a key never created")

	gone := x.key("gone")
	x.mustCreate(x.st, gone, want{data: []byte("x"), atime: timeAt(0), created: timeAt(0)})
	x.expectNil(x.del(x.st, gone), "Delete")
	err = x.update(x.st, gone, session.Record{Data: []byte("back"), ATime: timeAt(time.Minute), Version: 1})
	x.expectErr(err, session.ErrNotFound, "Update of a deleted record with its last Version")
	x.expectMissing(x.st, gone, "after Update of a deleted record (a killed session must stay dead)")
}

func checkUpdateKeepsCreated(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := timeAt(-time.Hour)
	x.mustCreate(x.st, k, want{data: []byte("one"), atime: timeAt(0), created: created})
	err := x.update(x.st, k, session.Record{Data: []byte("two"), ATime: timeAt(time.Minute), Created: timeAt(time.Minute), Version: 1})
	if !x.expectNil(err, "Update with rec.Created set to another time") {
		return
	}
	x.expect(x.st, k, want{data: []byte("two"), atime: timeAt(time.Minute), created: created, version: 2}, "after Update with rec.Created set (Created never changes)")
	err = x.update(x.st, k, session.Record{Data: []byte("three"), ATime: timeAt(2 * time.Minute), Version: 2})
	if !x.expectNil(err, "Update with a zero rec.Created") {
		return
	}
	x.expect(x.st, k, want{data: []byte("three"), atime: timeAt(2 * time.Minute), created: created, version: 3}, "after Update with a zero rec.Created")
}

func checkTouchATimeOnly(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := timeAt(0)
	x.mustCreate(x.st, k, want{data: []byte("one"), atime: created, created: created})
	cur := want{data: []byte("two"), atime: timeAt(time.Minute), created: created, version: 2}
	x.mustUpdate(x.st, k, cur, 1)
	for i, at := range []time.Time{timeAt(time.Hour + 1), timeAt(2*time.Hour + 999), timeAt(90 * time.Minute)} {
		if err := x.touch(x.st, k, at); !x.expectNil(err, "Touch of an existing record") {
			return
		}
		cur.atime = at
		x.expect(x.st, k, cur, fmt.Sprintf("after Touch #%d (to %s: it sets ATime, earlier or later, and keeps Data, Created and Version)", i+1, fmtTime(at)))
	}
	// Touch must not disturb the version check of the next Update.
	next := want{data: []byte("three"), atime: timeAt(3 * time.Hour), created: created, version: 3}
	if err := x.update(x.st, k, session.Record{Data: next.data, ATime: next.atime, Version: 2}); x.expectNil(err, "Update with Version 2 after Touches") {
		x.expect(x.st, k, next, "after Update following Touches")
	}
}

func checkTouchMissing(f *fixture) {
	x := storeFixture(f)
	never := x.key("never")
	x.expectErr(x.touch(x.st, never, timeAt(0)), session.ErrNotFound, "Touch of a key never created")
	x.expectMissing(x.st, never, "after Touch of a key never created (Touch never creates)")
	gone := x.key("gone")
	x.mustCreate(x.st, gone, want{data: []byte("x"), atime: timeAt(0), created: timeAt(0)})
	x.expectNil(x.del(x.st, gone), "Delete")
	x.expectErr(x.touch(x.st, gone, timeAt(time.Minute)), session.ErrNotFound, "Touch of a deleted record")
	x.expectMissing(x.st, gone, "after Touch of a deleted record (Touch never creates)")
}

func checkDeleteExisting(f *fixture) {
	x := storeFixture(f)
	k, other := x.key("k"), x.key("other")
	x.mustCreate(x.st, k, want{data: []byte("doomed"), atime: timeAt(0), created: timeAt(0)})
	keep := want{data: []byte("kept"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, other, keep)
	if !x.expectNil(x.del(x.st, k), "Delete of an existing record") {
		return
	}
	x.expectMissing(x.st, k, "after Delete")
	x.expectErr(x.update(x.st, k, session.Record{Data: []byte("x"), ATime: timeAt(time.Minute), Version: 1}), session.ErrNotFound, "Update after Delete")
	x.expectErr(x.touch(x.st, k, timeAt(time.Minute)), session.ErrNotFound, "Touch after Delete")
	x.expect(x.st, other, keep, "another record after Delete (Delete removes only its key)")
	fresh := want{data: []byte("reborn"), atime: timeAt(time.Hour), created: timeAt(time.Hour), version: 1}
	if err := x.create(x.st, k, fresh.record()); x.expectNil(err, "Create after Delete (the key is free again)") {
		x.expect(x.st, k, fresh, "after Create following Delete (a new record, at Version 1)")
	}
}

func checkDeleteMissing(f *fixture) {
	x := storeFixture(f)
	x.expectNil(x.del(x.st, x.key("never")), "Delete of a key never created (deleting a missing key is not an error)")
	k := x.key("twice")
	x.mustCreate(x.st, k, want{data: []byte("x"), atime: timeAt(0), created: timeAt(0)})
	x.expectNil(x.del(x.st, k), "first Delete")
	x.expectNil(x.del(x.st, k), "second Delete of the same key (deleting a missing key is not an error)")
	x.expectMissing(x.st, k, "after two Deletes")
}

// --- Cleanup -------------------------------------------------------------

var (
	zoneWest = time.FixedZone("UTC-09:30", -(9*3600 + 30*60))
	zoneEast = time.FixedZone("UTC+14", 14*3600)
)

func checkCleanupBoundary(f *fixture) {
	x := storeFixture(f)
	s := x.s
	cutoff := s.align(timeAt(time.Hour)).UTC()
	type rec struct {
		label string
		atime time.Time
		gone  bool
	}
	recs := []rec{
		{"one step before the cutoff", cutoff.Add(-s.step).In(Epoch.Location()), true},
		{"an hour before the cutoff", cutoff.Add(-time.Hour).In(zoneWest), true},
		{"exactly at the cutoff", cutoff.In(zoneEast), false},
		{"exactly at the cutoff, in another zone", cutoff.In(zoneWest), false},
		{"one step after the cutoff", cutoff.Add(s.step).In(Epoch.Location()), false},
		{"an hour after the cutoff", cutoff.Add(time.Hour), false},
	}
	wants := make([]want, len(recs))
	for i, r := range recs {
		wants[i] = want{data: []byte(r.label), atime: r.atime, created: cutoff.Add(-2 * time.Hour), version: 1}
		x.mustCreate(x.st, x.key(r.label), wants[i])
	}
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if n != 2 {
		x.errorf("Cleanup(%s) returned %d, want 2 (the records strictly before the cutoff)", fmtTime(cutoff), n)
	}
	for i, r := range recs {
		if r.gone {
			x.expectMissing(x.st, x.key(r.label), fmt.Sprintf("record with ATime %s, %s, after Cleanup (ATime strictly before the cutoff is deleted)", fmtTime(r.atime), r.label))
		} else {
			x.expect(x.st, x.key(r.label), wants[i], fmt.Sprintf("record with ATime %s, %s, after Cleanup (at or after the cutoff is kept, intact)", fmtTime(r.atime), r.label))
		}
	}
}

func checkCleanupCount(f *fixture) {
	x := storeFixture(f)
	cutoff := x.s.align(timeAt(24 * time.Hour))
	const old, young = 23, 9
	for i := range old {
		at := cutoff.Add(-time.Duration(i+1) * 37 * time.Minute)
		x.mustCreate(x.st, x.key(fmt.Sprint("old", i)), want{data: []byte("old"), atime: at, created: at})
	}
	for i := range young {
		at := cutoff.Add(time.Duration(i) * 41 * time.Minute)
		x.mustCreate(x.st, x.key(fmt.Sprint("young", i)), want{data: []byte("young"), atime: at, created: at.Add(-48 * time.Hour)})
	}
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if n != old {
		x.errorf("Cleanup returned %d, want %d: it must return how many records it deleted", n, old)
	}
	for i := range old {
		x.expectMissing(x.st, x.key(fmt.Sprint("old", i)), fmt.Sprintf("old record %d after Cleanup", i))
	}
	for i := range young {
		at := cutoff.Add(time.Duration(i) * 41 * time.Minute)
		x.expect(x.st, x.key(fmt.Sprint("young", i)), want{data: []byte("young"), atime: at, created: at.Add(-48 * time.Hour), version: 1}, fmt.Sprintf("young record %d after Cleanup", i))
	}
	n, err = x.cleanup(x.st, cutoff)
	if x.expectNil(err, "second Cleanup") && n != 0 {
		x.errorf("a second Cleanup with the same cutoff returned %d, want 0: nothing was left to delete", n)
	}
}

func checkCleanupByATime(f *fixture) {
	x := storeFixture(f)
	cutoff := x.s.align(timeAt(24 * time.Hour))
	long := cutoff.Add(-12 * time.Hour)
	recent := cutoff.Add(time.Hour)
	// Created long ago but touched since: kept.
	touched := x.key("touched")
	x.mustCreate(x.st, touched, want{data: []byte("touched"), atime: long, created: long})
	x.expectNil(x.touch(x.st, touched, recent), "Touch")
	// Created long ago but updated since: kept.
	updated := x.key("updated")
	x.mustCreate(x.st, updated, want{data: []byte("updated"), atime: long, created: long})
	x.mustUpdate(x.st, updated, want{data: []byte("updated 2"), atime: recent}, 1)
	// Created recently, last access recorded before the cutoff: deleted.
	idle := x.key("idle")
	x.mustCreate(x.st, idle, want{data: []byte("idle"), atime: long, created: recent})
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if n != 1 {
		x.errorf("Cleanup returned %d, want 1: only the record whose ATime is before the cutoff (Created does not matter)", n)
	}
	x.expect(x.st, touched, want{data: []byte("touched"), atime: recent, created: long, version: 1}, "record created before the cutoff but touched after it")
	x.expect(x.st, updated, want{data: []byte("updated 2"), atime: recent, created: long, version: 2}, "record created before the cutoff but updated after it")
	x.expectMissing(x.st, idle, "record created after the cutoff whose ATime is before it")
}

func checkCleanupReallyDeletes(f *fixture) {
	x := storeFixture(f)
	cutoff := x.s.align(timeAt(24 * time.Hour))
	gone, stays := x.key("gone"), x.key("stays")
	old := cutoff.Add(-time.Hour)
	x.mustCreate(x.st, gone, want{data: []byte("gone"), atime: old, created: old})
	x.mustCreate(x.st, stays, want{data: []byte("stays"), atime: cutoff, created: cutoff})
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return
	}
	if n != 1 {
		x.errorf("Cleanup returned %d, want 1", n)
	}
	// Wind the clock back: a store that only hides records older than the
	// last cutoff it saw would show them again.
	n, err = x.cleanup(x.st, cutoff.Add(-48*time.Hour))
	if x.expectNil(err, "Cleanup with a cutoff two days earlier") && n != 0 {
		x.errorf("Cleanup with an earlier cutoff returned %d, want 0", n)
	}
	x.expectMissing(x.st, gone, "deleted record, after a later Cleanup with an earlier cutoff (Cleanup deletes, it does not hide)")
	x.expectErr(x.touch(x.st, gone, cutoff.Add(time.Hour)), session.ErrNotFound, "Touch of a record Cleanup deleted")
	x.expectErr(x.update(x.st, gone, session.Record{Data: []byte("back"), ATime: cutoff.Add(time.Hour), Version: 1}), session.ErrNotFound, "Update of a record Cleanup deleted")
	x.expectMissing(x.st, gone, "deleted record, after Touch and Update tried to revive it")
	fresh := want{data: []byte("new"), atime: cutoff.Add(time.Hour), created: cutoff.Add(time.Hour), version: 1}
	if err := x.create(x.st, gone, fresh.record()); x.expectNil(err, "Create under the key of a record Cleanup deleted (the key is free)") {
		x.expect(x.st, gone, fresh, "after Create under the key Cleanup freed")
	}
}

// --- Time ----------------------------------------------------------------

func checkTimeZone(f *fixture) {
	x := storeFixture(f)
	instant := timeAt(0)
	zones := []*time.Location{time.UTC, Epoch.Location(), zoneWest, zoneEast, time.FixedZone("UTC+00:00:01", 1)}
	for i, z := range zones {
		k := x.key(fmt.Sprint("zone", i))
		w := want{data: []byte(z.String()), atime: instant.In(z), created: instant.Add(-time.Hour).In(zones[(i+1)%len(zones)]), version: 1}
		x.mustCreate(x.st, k, w)
		x.expect(x.st, k, w, fmt.Sprintf("times stored in zone %s (times are instants: any zone may come back, the instant may not move)", z))
		w.atime = instant.Add(time.Minute).In(zones[(i+2)%len(zones)])
		w.version = 2
		x.mustUpdate(x.st, k, w, 1)
		x.expect(x.st, k, w, fmt.Sprintf("ATime updated in zone %s", w.atime.Location()))
		w.atime = instant.Add(2 * time.Minute).In(zones[(i+3)%len(zones)])
		x.expectNil(x.touch(x.st, k, w.atime), "Touch")
		x.expect(x.st, k, w, fmt.Sprintf("ATime touched in zone %s", w.atime.Location()))
	}
}

func checkTimeSubPrecision(f *fixture) {
	x := storeFixture(f)
	base := time.Date(2041, time.March, 7, 13, 45, 12, 0, Epoch.Location())
	// Sub-microsecond digits that round up under any rounding to µs, ms or
	// s, and an instant on the grid that must come back exactly.
	frac := []time.Duration{999_999_999, 999_999_500, 123_456_789, 500_000_000, 1, 0}
	for i, d := range frac {
		at := base.Add(d)
		k := x.key(fmt.Sprint("t", i))
		w := want{data: []byte("t"), atime: at, created: at.Add(-time.Hour - 1), version: 1}
		x.mustCreate(x.st, k, w)
		x.expect(x.st, k, w, fmt.Sprintf("times with fraction .%09d s stored by Create", int64(d)))
		w.atime, w.version = at.Add(time.Minute), 2
		x.mustUpdate(x.st, k, w, 1)
		x.expect(x.st, k, w, fmt.Sprintf("ATime with fraction .%09d s stored by Update", int64(d)))
		w.atime = at.Add(2 * time.Minute)
		x.expectNil(x.touch(x.st, k, w.atime), "Touch")
		x.expect(x.st, k, w, fmt.Sprintf("ATime with fraction .%09d s stored by Touch", int64(d)))
	}
	if x.s.precision > 0 {
		at := x.s.align(base.Add(123_456_789))
		k := x.key("aligned")
		w := want{data: []byte("aligned"), atime: at, created: at, version: 1}
		x.mustCreate(x.st, k, w)
		rec, err := x.load(x.st, k)
		if err == nil && (!rec.ATime.Equal(at) || !rec.Created.Equal(at)) {
			x.errorf("times on the Precision grid (%s) came back as ATime %s, Created %s: a time the storage can represent must come back Equal", fmtTime(at), fmtTime(rec.ATime), fmtTime(rec.Created))
		}
	}
}

// --- Payloads --------------------------------------------------------------

func checkPayloadEmpty(f *fixture) {
	x := storeFixture(f)
	for _, c := range []struct {
		label string
		data  []byte
	}{{"nil Data", nil}, {"empty non-nil Data", []byte{}}} {
		k := x.key(c.label)
		if err := x.create(x.st, k, session.Record{Data: c.data, ATime: timeAt(0), Created: timeAt(0)}); !x.expectNil(err, "Create with "+c.label) {
			continue
		}
		x.expect(x.st, k, want{data: []byte{}, atime: timeAt(0), created: timeAt(0), version: 1}, "after Create with "+c.label+" (empty Data is a record, not an absence)")
	}
	k := x.key("emptied")
	x.mustCreate(x.st, k, want{data: []byte("something"), atime: timeAt(0), created: timeAt(0)})
	if err := x.update(x.st, k, session.Record{Data: nil, ATime: timeAt(time.Minute), Version: 1}); x.expectNil(err, "Update to empty Data") {
		x.expect(x.st, k, want{data: []byte{}, atime: timeAt(time.Minute), created: timeAt(0), version: 2}, "after Update to empty Data")
	}
	if err := x.update(x.st, k, session.Record{Data: []byte("again"), ATime: timeAt(2 * time.Minute), Version: 2}); x.expectNil(err, "Update from empty Data") {
		x.expect(x.st, k, want{data: []byte("again"), atime: timeAt(2 * time.Minute), created: timeAt(0), version: 3}, "after Update from empty Data")
	}
}

// binaryPayloads are data that text-minded storage mangles.
func binaryPayloads() [][]byte {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	rev := make([]byte, 256)
	for i := range rev {
		rev[i] = byte(255 - i)
	}
	return [][]byte{
		all,
		rev,
		{0},
		{0, 0, 0},
		[]byte("a\x00b"),
		[]byte("\x00leading NUL"),
		[]byte("trailing NUL\x00"),
		[]byte("\xff\xfe\xfd"),
		[]byte("\xc3\x28 invalid UTF-8 \xa0\xa1"),
		[]byte("\xed\xa0\x80 surrogate, \xf4\x90\x80\x80 beyond U+10FFFF"),
		[]byte("é 中文 🙂 valid UTF-8"),
		[]byte("  leading and trailing spaces  "),
		[]byte("\r\n\t\v\f"),
		[]byte("trailing newline\n"),
		[]byte(`'; DROP TABLE sessions; -- "quoted" \backslash\ %_ wildcards`),
		bytes.Repeat([]byte{0}, 1000),
	}
}

func checkPayloadBinary(f *fixture) {
	x := storeFixture(f)
	payloads := binaryPayloads()
	for i, p := range payloads {
		k := x.key(fmt.Sprint("bin", i))
		w := want{data: p, atime: timeAt(0), created: timeAt(0), version: 1}
		x.mustCreate(x.st, k, w)
		x.expect(x.st, k, w, fmt.Sprintf("binary payload #%d (%d bytes) stored by Create", i, len(p)))
	}
	k := x.key("updated")
	x.mustCreate(x.st, k, want{data: []byte("start"), atime: timeAt(0), created: timeAt(0)})
	for i, p := range payloads {
		w := want{data: p, atime: timeAt(time.Duration(i+1) * time.Second), created: timeAt(0), version: uint64(i + 2)}
		x.mustUpdate(x.st, k, w, uint64(i+1))
		x.expect(x.st, k, w, fmt.Sprintf("binary payload #%d (%d bytes) stored by Update", i, len(p)))
	}
}

// payload returns n bytes that are hard to compress and differ per seed,
// so that a truncated or mixed-up payload cannot compare equal.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func checkPayloadMax(f *fixture) {
	x := storeFixture(f)
	n := x.s.maxPayload
	k := x.key("max")
	w := want{data: payload(n, 1), atime: timeAt(0), created: timeAt(0), version: 1}
	if err := x.create(x.st, k, w.record()); !x.expectNil(err, fmt.Sprintf("Create with %d bytes of Data, the declared maximum", n)) {
		return
	}
	x.expect(x.st, k, w, fmt.Sprintf("%d bytes stored by Create", n))
	w = want{data: payload(n, 2), atime: timeAt(time.Minute), created: timeAt(0), version: 2}
	if err := x.update(x.st, k, session.Record{Data: w.data, ATime: w.atime, Version: 1}); !x.expectNil(err, fmt.Sprintf("Update with %d bytes of Data", n)) {
		return
	}
	x.expect(x.st, k, w, fmt.Sprintf("%d bytes stored by Update", n))
}

func checkPayloadBeyondMax(f *fixture) {
	x := storeFixture(f)
	n := x.s.maxPayload + 1
	k := x.key("beyond")
	big := payload(n, 3)
	err := x.create(x.st, k, session.Record{Data: big, ATime: timeAt(0), Created: timeAt(0)})
	switch {
	case err == nil:
		x.expect(x.st, k, want{data: big, atime: timeAt(0), created: timeAt(0), version: 1}, fmt.Sprintf("%d bytes (one more than the declared maximum) accepted by Create: then they must all be kept", n))
	case errors.Is(err, session.ErrTooLarge):
		x.expectMissing(x.st, k, "after Create refused an oversized record with ErrTooLarge (it must store nothing)")
	default:
		x.errorf("Create with %d bytes (one more than the declared maximum): got error %v, want nil or an error wrapping session.ErrTooLarge", n, err)
	}
	k2 := x.key("beyond-update")
	small := want{data: []byte("small"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k2, small)
	err = x.update(x.st, k2, session.Record{Data: big, ATime: timeAt(time.Minute), Version: 1})
	switch {
	case err == nil:
		x.expect(x.st, k2, want{data: big, atime: timeAt(time.Minute), created: timeAt(0), version: 2}, fmt.Sprintf("%d bytes accepted by Update: then they must all be kept", n))
	case errors.Is(err, session.ErrTooLarge):
		x.expect(x.st, k2, small, "after Update refused oversized Data with ErrTooLarge (it must change nothing)")
	default:
		x.errorf("Update with %d bytes (one more than the declared maximum): got error %v, want nil or an error wrapping session.ErrTooLarge", n, err)
	}
}

// --- Aliasing ------------------------------------------------------------

func checkAliasingSave(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	buf := []byte("original data")
	if err := x.create(x.st, k, session.Record{Data: buf, ATime: timeAt(0), Created: timeAt(0)}); !x.expectNil(err, "Create") {
		return
	}
	copy(buf, "XXXXXXXXXXXXX")
	x.expect(x.st, k, want{data: []byte("original data"), atime: timeAt(0), created: timeAt(0), version: 1}, "after the caller overwrote the slice it passed to Create (the store must keep its own copy)")
	buf = append(make([]byte, 0, 64), "updated data"...)
	if err := x.update(x.st, k, session.Record{Data: buf, ATime: timeAt(time.Minute), Version: 1}); !x.expectNil(err, "Update") {
		return
	}
	copy(buf, "YYYYYYYYYYYY")
	_ = append(buf, "spare capacity written"...)
	x.expect(x.st, k, want{data: []byte("updated data"), atime: timeAt(time.Minute), created: timeAt(0), version: 2}, "after the caller overwrote the slice it passed to Update")
}

func checkAliasingLoad(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	w := want{data: []byte("stored data"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	r1, err := x.load(x.st, k)
	if !x.expectNil(err, "Load") {
		return
	}
	for i := range r1.Data {
		r1.Data[i] = 'Z'
	}
	x.expect(x.st, k, w, "after the caller overwrote the Data of a loaded record (Load must return a copy)")
	r2, err := x.load(x.st, k)
	if !x.expectNil(err, "Load") {
		return
	}
	kept := bytes.Clone(r2.Data)
	x.mustUpdate(x.st, k, want{data: []byte("newer value"), atime: timeAt(time.Minute)}, 1)
	if !bytes.Equal(r2.Data, kept) {
		x.errorf("a record loaded before an Update changed under the caller's feet: got %q, want %q (the store must not write into memory it handed out)", r2.Data, kept)
	}
}

// --- Keys ------------------------------------------------------------------

const keyAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// longKey returns a key of session.MaxKeyLen bytes drawn from the whole
// alphabet, ending in last.
func longKey(seed int, last byte) string {
	b := make([]byte, session.MaxKeyLen)
	for i := range b {
		b[i] = keyAlphabet[(i*7+seed)%len(keyAlphabet)]
	}
	b[len(b)-1] = last
	return string(b)
}

func checkKeyMaxLength(f *fixture) {
	x := storeFixture(f)
	keys := []string{longKey(0, 'a'), longKey(0, 'b'), longKey(5, '_')}
	for i, k := range keys {
		if len(k) != session.MaxKeyLen || !session.ValidKey(k) {
			panic("conformance: bad test key")
		}
		w := want{data: []byte(fmt.Sprint("long key ", i)), atime: timeAt(0), created: timeAt(0), version: 1}
		if err := x.create(x.st, k, w.record()); !x.expectNil(err, fmt.Sprintf("Create with a key of %d bytes (session.MaxKeyLen: every store must accept it)", len(k))) {
			continue
		}
	}
	for i, k := range keys {
		w := want{data: []byte(fmt.Sprint("long key ", i)), atime: timeAt(0), created: timeAt(0), version: 1}
		x.expect(x.st, k, w, fmt.Sprintf("key #%d of %d bytes (keys differing only in their last byte are different keys)", i, len(k)))
	}
	x.expectMissing(x.st, keys[0][:session.MaxKeyLen-1], "the 127-byte prefix of a stored 128-byte key")
	x.expectNil(x.del(x.st, keys[0]), "Delete of a 128-byte key")
	x.expectMissing(x.st, keys[0], "128-byte key after Delete")
	x.expect(x.st, keys[1], want{data: []byte("long key 1"), atime: timeAt(0), created: timeAt(0), version: 1}, "the 128-byte key differing in its last byte, after the other's Delete")
}

func checkKeyDistinct(f *fixture) {
	x := storeFixture(f)
	// Groups of keys a careless store confuses: case, prefixes, SQL LIKE
	// wildcards, dash and underscore.
	keys := []string{"abc", "ABC", "Abc", "abcd", "ab", "a_c", "a-c", "aXc", "_", "-", "__", "session", "SESSION"}
	for i, k := range keys {
		x.mustCreate(x.st, k, want{data: []byte(fmt.Sprint("distinct ", i)), atime: timeAt(time.Duration(i)), created: timeAt(0)})
	}
	for i, k := range keys {
		x.expect(x.st, k, want{data: []byte(fmt.Sprint("distinct ", i)), atime: timeAt(time.Duration(i)), created: timeAt(0), version: 1}, fmt.Sprintf("key %q among %q (keys are compared byte for byte: case-sensitive, no wildcards)", k, keys))
	}
	x.expectNil(x.del(x.st, "abc"), `Delete("abc")`)
	x.expectMissing(x.st, "abc", `"abc" after its Delete`)
	for i, k := range keys {
		if k == "abc" {
			continue
		}
		x.expect(x.st, k, want{data: []byte(fmt.Sprint("distinct ", i)), atime: timeAt(time.Duration(i)), created: timeAt(0), version: 1}, fmt.Sprintf(`key %q after Delete("abc")`, k))
	}
}

func checkKeyAlphabet(f *fixture) {
	x := storeFixture(f)
	keys := []string{keyAlphabet, "-", "-rf", "--", "0", "9", "Z", "z", "CON", "NUL", "aux", "A-_-Z"}
	for i, k := range keys {
		w := want{data: []byte(fmt.Sprint("alphabet ", i)), atime: timeAt(0), created: timeAt(0), version: 1}
		if err := x.create(x.st, k, w.record()); !x.expectNil(err, fmt.Sprintf("Create with the valid key %q", k)) {
			continue
		}
		x.expect(x.st, k, w, fmt.Sprintf("valid key %q", k))
		w.atime, w.version = timeAt(time.Minute), 2
		x.mustUpdate(x.st, k, w, 1)
		x.expectNil(x.touch(x.st, k, timeAt(2*time.Minute)), fmt.Sprintf("Touch(%q)", k))
		w.atime = timeAt(2 * time.Minute)
		x.expect(x.st, k, w, fmt.Sprintf("valid key %q after Update and Touch", k))
	}
}

func checkKeyInvalid(f *fixture) {
	x := storeFixture(f)
	invalid := []string{"", "../cf_escape_probe", "a/b", `a\b`, "a.b", ".", "a b", "a'b", `a"b`, "a;b", "a%b", "a\x00b", "é", strings.Repeat("k", session.MaxKeyLen+1)}
	for _, k := range invalid {
		if session.ValidKey(k) {
			panic("conformance: bad test key")
		}
		w := want{data: []byte("invalid key"), atime: timeAt(0), created: timeAt(0), version: 1}
		err := x.create(x.st, k, w.record())
		switch {
		case err == nil:
			// A store may accept more keys than the manager makes, but then
			// they are keys like any other.
			x.expect(x.st, k, w, fmt.Sprintf("invalid key %q that Create accepted", k))
			x.expectNil(x.del(x.st, k), fmt.Sprintf("Delete(%q)", k))
		case errors.Is(err, session.ErrInvalidKey):
			if _, lerr := x.load(x.st, k); !errors.Is(lerr, session.ErrNotFound) && !errors.Is(lerr, session.ErrInvalidKey) {
				x.errorf("Load(%q) of a key Create refused: got %v, want an error wrapping session.ErrNotFound or session.ErrInvalidKey", k, lerr)
			}
		default:
			x.errorf("Create with the invalid key %q: got error %v, want an error wrapping session.ErrInvalidKey (or success)", k, err)
		}
	}
	// The namespace still works.
	k := x.key("after")
	w := want{data: []byte("ok"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	x.expect(x.st, k, w, "a valid key after the invalid ones")
}

// --- Close ---------------------------------------------------------------------

func checkUseAfterClose(f *fixture) {
	x := storeFixture(f)
	closer, ok := x.st.(io.Closer)
	if !ok {
		x.t.Log("the store does not implement io.Closer: nothing to close, nothing to check")
		return
	}
	k := x.key("closed")
	w := want{data: []byte("before close"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	if err := closer.Close(); err != nil {
		x.fatalf("Close: %v", err)
	}
	later := want{data: []byte("after close"), atime: timeAt(time.Hour), created: timeAt(time.Hour), version: 1}
	_, err := x.load(x.st, k)
	x.expectErr(err, session.ErrClosed, "Load after Close")
	x.expectErr(x.create(x.st, x.key("new"), later.record()), session.ErrClosed, "Create after Close")
	rec := later.record()
	rec.Version = 1
	x.expectErr(x.update(x.st, k, rec), session.ErrClosed, "Update after Close")
	x.expectErr(x.touch(x.st, k, timeAt(time.Hour)), session.ErrClosed, "Touch after Close")
	x.expectErr(x.del(x.st, k), session.ErrClosed, "Delete after Close")
	_, err = x.cleanup(x.st, timeAt(2*time.Hour))
	x.expectErr(err, session.ErrClosed, "Cleanup after Close")
	if err := closer.Close(); err != nil {
		x.errorf("a second Close: %v, want nil (Close is idempotent)", err)
	}
	if _, ok := x.s.h.Unsupported[SharedStorage]; ok {
		return
	}
	// Nothing reached the storage: a new instance finds it as it was.
	other := x.open()
	x.expect(other, k, w, "in a new instance, after calls on a closed one")
	x.expectMissing(other, x.key("new"), "in a new instance, after Create on a closed one")
}

// --- A second instance -------------------------------------------------------

// eventually polls cond for up to Staleness (once when it is 0): the only
// real waiting in the suite.
func (x *storeT) eventually(cond func() string) string {
	x.t.Helper()
	return x.s.eventually(cond)
}

// eventually polls cond for up to Staleness (once when it is 0), until it
// reports no problem; it returns the last problem.
func (s *suite) eventually(cond func() string) string {
	deadline := time.Now().Add(s.staleness)
	interval := min(max(s.staleness/50, time.Millisecond), 50*time.Millisecond)
	for {
		problem := cond()
		if problem == "" || !time.Now().Before(deadline) {
			return problem
		}
		time.Sleep(interval)
	}
}

func (x *storeT) staleNote() string {
	if x.s.staleness == 0 {
		return "at once (Harness.Staleness is 0)"
	}
	return fmt.Sprintf("within Harness.Staleness %v", x.s.staleness)
}

// seesRecord checks that st shows w under key within Staleness.
func (x *storeT) seesRecord(st session.Store, key string, w want, when string) {
	x.t.Helper()
	problem := x.eventually(func() string {
		rec, err := x.load(st, key)
		if err != nil {
			return fmt.Sprintf("Load: error %v", err)
		}
		if p := x.s.recordProblems(rec, w); len(p) > 0 {
			return strings.Join(p, "; ")
		}
		return ""
	})
	if problem != "" {
		x.errorf("second instance %s: did not see the record %s: %s", when, x.staleNote(), problem)
	}
}

func (x *storeT) seesMissing(st session.Store, key string, when string) {
	x.t.Helper()
	problem := x.eventually(func() string {
		rec, err := x.load(st, key)
		switch {
		case errors.Is(err, session.ErrNotFound):
			return ""
		case err != nil:
			return fmt.Sprintf("Load: error %v, want ErrNotFound", err)
		}
		return fmt.Sprintf("Load still returns a record (Version %d)", rec.Version)
	})
	if problem != "" {
		x.errorf("second instance %s: still sees the record after %s: %s", when, x.staleNote(), problem)
	}
}

func checkSecondSeesCreate(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	k := x.key("k")
	x.expectMissing(second, k, "second instance before any write")
	w := want{data: []byte("from the first"), atime: timeAt(0), created: timeAt(-time.Minute), version: 1}
	x.mustCreate(x.st, k, w)
	x.seesRecord(second, k, w, "after the first created a record")
	third := x.open()
	x.seesRecord(third, k, w, "opened after the first created a record")
}

func checkSecondSeesUpdate(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	k := x.key("k")
	x.mustCreate(x.st, k, want{data: []byte("v1"), atime: timeAt(0), created: timeAt(0)})
	x.seesRecord(second, k, want{data: []byte("v1"), atime: timeAt(0), created: timeAt(0), version: 1}, "after Create")
	w := want{data: []byte("v2 from the first"), atime: timeAt(time.Minute), created: timeAt(0), version: 2}
	x.mustUpdate(x.st, k, w, 1)
	x.seesRecord(second, k, w, "after the first updated the record")
	w3 := want{data: []byte("v3 from the second"), atime: timeAt(2 * time.Minute), created: timeAt(0), version: 3}
	x.mustUpdate(second, k, w3, 2)
	x.seesRecord(x.st, k, w3, "(the first, this time) after the second updated the record")
}

func checkSecondSeesTouch(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	k := x.key("k")
	w := want{data: []byte("touched"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	x.seesRecord(second, k, w, "after Create")
	w.atime = timeAt(time.Hour)
	x.expectNil(x.touch(x.st, k, w.atime), "Touch")
	x.seesRecord(second, k, w, "after the first touched the record")
}

func checkSecondSeesDelete(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	k := x.key("k")
	w := want{data: []byte("doomed"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	x.seesRecord(second, k, w, "after Create")
	x.expectNil(x.del(x.st, k), "Delete")
	x.seesMissing(second, k, "after the first deleted the record")
	x.expectErr(x.update(second, k, session.Record{Data: []byte("revived"), ATime: timeAt(time.Minute), Version: 1}), session.ErrNotFound, "second instance's Update of a record the first deleted")
	x.expectErr(x.touch(second, k, timeAt(time.Minute)), session.ErrNotFound, "second instance's Touch of a record the first deleted")
	x.expectMissing(x.st, k, "first instance, after the second tried to revive the record")
}

func checkSecondSeesCleanup(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	cutoff := x.s.align(timeAt(time.Hour))
	old, young := x.key("old"), x.key("young")
	x.mustCreate(x.st, old, want{data: []byte("old"), atime: cutoff.Add(-x.s.step), created: cutoff.Add(-time.Hour)})
	yw := want{data: []byte("young"), atime: cutoff, created: cutoff, version: 1}
	x.mustCreate(x.st, young, yw)
	x.seesRecord(second, young, yw, "after Create")
	n, err := x.cleanup(second, cutoff)
	if x.expectNil(err, "Cleanup by the second instance") && n != 1 {
		x.errorf("Cleanup by the second instance of records the first created returned %d, want 1", n)
	}
	x.seesMissing(x.st, old, "(the first, this time) after the second's Cleanup")
	x.expect(x.st, young, yw, "first instance, record the second's Cleanup had to keep")
}

func checkSecondWriteConflicts(f *fixture) {
	x := storeFixture(f)
	second := x.open()
	k := x.key("k")
	x.mustCreate(x.st, k, want{data: []byte("v1"), atime: timeAt(0), created: timeAt(0)})
	x.seesRecord(second, k, want{data: []byte("v1"), atime: timeAt(0), created: timeAt(0), version: 1}, "after Create")
	// Writes are decided by the storage, never by a cache: no staleness.
	x.expectErr(x.create(second, k, session.Record{Data: []byte("dup"), ATime: timeAt(0), Created: timeAt(0)}), session.ErrExists, "second instance's Create of a key the first created")
	w2 := want{data: []byte("v2 from the first"), atime: timeAt(time.Minute), created: timeAt(0), version: 2}
	x.mustUpdate(x.st, k, w2, 1)
	x.expectErr(x.update(second, k, session.Record{Data: []byte("lost update"), ATime: timeAt(2 * time.Minute), Version: 1}), session.ErrConflict, "second instance's Update with Version 1 after the first's Update to Version 2 (versions are checked against the storage at once, whatever a cache holds)")
	x.expect(x.st, k, w2, "first instance, after the second's stale Update")
	k2 := x.key("k2")
	x.mustCreate(second, k2, want{data: []byte("from the second"), atime: timeAt(0), created: timeAt(0)})
	x.expectErr(x.create(x.st, k2, session.Record{Data: []byte("dup"), ATime: timeAt(0), Created: timeAt(0)}), session.ErrExists, "first instance's Create of a key the second created")
}
