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
	ns   string
	st   session.Store // the first instance over ns
	prev string        // the last call that returned, for the message of a hung one
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
	return x.openNS(x.ns)
}

// openNS returns an instance over namespace ns.
func (x *storeT) openNS(ns string) session.Store {
	x.t.Helper()
	st := x.s.h.NewStore(x.t, ns)
	if st == nil {
		x.t.Fatalf("Harness.NewStore(%q) returned a nil store", ns)
	}
	x.s.noteOwnerIndex(st)
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

// do runs one store call, described as Op(arguments), under the suite's
// deadline and watchdog, ending the subtest if the call hung or panicked.
func do[T any](x *storeT, desc string, fn func(ctx context.Context) (T, error)) (T, error) {
	x.t.Helper()
	v, err := call(x.s, context.Background(), desc, fn)
	var h *hungError
	if errors.As(err, &h) {
		h.before = x.prev
	}
	x.stop(err)
	x.prev = desc + ", " + outcome(err)
	return v, err
}

// errOnly adapts a call that returns only an error to do.
func errOnly(fn func(ctx context.Context) error) func(ctx context.Context) (struct{}, error) {
	return func(ctx context.Context) (struct{}, error) { return struct{}{}, fn(ctx) }
}

func (x *storeT) load(st session.Store, key string) (session.Record, error) {
	x.t.Helper()
	return do(x, desc("Load", key), func(ctx context.Context) (session.Record, error) { return st.Load(ctx, key) })
}

func (x *storeT) create(st session.Store, key string, rec session.Record) error {
	x.t.Helper()
	_, err := do(x, desc("Create", key), errOnly(func(ctx context.Context) error { return st.Create(ctx, key, rec) }))
	return err
}

func (x *storeT) update(st session.Store, key string, rec session.Record) error {
	x.t.Helper()
	_, err := do(x, desc("Update", key), errOnly(func(ctx context.Context) error { return st.Update(ctx, key, rec) }))
	return err
}

func (x *storeT) touch(st session.Store, key string, atime time.Time) error {
	x.t.Helper()
	_, err := do(x, desc("Touch", key), errOnly(func(ctx context.Context) error { return st.Touch(ctx, key, atime) }))
	return err
}

func (x *storeT) del(st session.Store, key string) error {
	x.t.Helper()
	_, err := do(x, desc("Delete", key), errOnly(func(ctx context.Context) error { return st.Delete(ctx, key) }))
	return err
}

func (x *storeT) cleanup(st session.Store, cutoff time.Time) (int, error) {
	x.t.Helper()
	return do(x, "Cleanup("+fmtTime(cutoff)+")", func(ctx context.Context) (int, error) { return st.Cleanup(ctx, cutoff) })
}

// close closes st if it implements io.Closer, through the panic guard. It
// reports whether st is a Closer.
func (x *storeT) close(st session.Store) (bool, error) {
	x.t.Helper()
	c, ok := st.(io.Closer)
	if !ok {
		return false, nil
	}
	_, err := do(x, "Close()", errOnly(func(context.Context) error { return c.Close() }))
	return true, err
}

// want is what a record must hold after a sequence of calls.
type want struct {
	data    []byte
	atime   time.Time
	created time.Time
	version uint64
	// owner is the Record.Owner to store and, if hasOwner, to find again:
	// only the owner checks compare it, since a store without an owner
	// index may drop it.
	owner    string
	hasOwner bool
}

func (w want) record() session.Record {
	return session.Record{Data: w.data, ATime: w.atime, Created: w.created, Version: w.version, Owner: w.owner}
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
		x.errorf("%s: got error %v, want an error wrapping %s (test with errors.Is)%s", what, err, sentinelName(target), mixUp(err, target))
	}
	return false
}

// mixUp explains the usual cause of one sentinel returned for another.
func mixUp(err, target error) string {
	switch {
	case target == session.ErrConflict && errors.Is(err, session.ErrNotFound):
		return ". The record exists at another Version: that is a conflict. A conditional UPDATE ... WHERE key = ? AND version = ? that matched no row must then check whether the key exists, and answer ErrConflict if it does, ErrNotFound only if it does not"
	case target == session.ErrNotFound && errors.Is(err, session.ErrConflict):
		return ". The record is gone: that is ErrNotFound, not a conflict. A conditional update that matched no row must check whether the key exists before answering ErrConflict"
	case target == session.ErrNotFound && errors.Is(err, session.ErrExists):
		return ". ErrExists is Create's answer for a taken key; a missing record is ErrNotFound"
	}
	return ""
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
	case session.ErrClosed:
		return "session.ErrClosed"
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
	if w.hasOwner && rec.Owner != w.owner {
		p = append(p, fmt.Sprintf("Owner: got %q, want %q", rec.Owner, w.owner))
	}
	return p
}

// timeProblem describes how got, a time read back, breaks the rule that
// times come back Equal to what was stored, up to Precision earlier and
// never later, in any zone; and what most likely made it so.
func (s *suite) timeProblem(got, want time.Time) string {
	if got.IsZero() && !want.IsZero() {
		return fmt.Sprintf("got the zero time, want %s: the time was not stored, or not read back", fmtTime(want))
	}
	d := want.Sub(got)
	if d >= 0 && d <= s.precision {
		return ""
	}
	how := fmt.Sprintf("%v earlier than", d)
	if d < 0 {
		how = fmt.Sprintf("%v later than", -d)
	}
	return fmt.Sprintf("got %s, %s the %s stored: %s", fmtTime(got), how, fmtTime(want), s.timeCause(got, want))
}

// timeCause names the likeliest cause of got coming back for want.
func (s *suite) timeCause(got, want time.Time) string {
	d := want.Sub(got)
	local := want.In(time.Local)
	// within: g is w or at most Precision earlier.
	within := func(g, w time.Time) bool { e := w.Sub(g); return e >= 0 && e <= s.precision }
	switch {
	case got.Sub(time.Now()).Abs() < 48*time.Hour:
		return "that is today, the machine's clock: a store never reads a clock (time.Now, SQL now() or CURRENT_TIMESTAMP, a column default, file mtimes); it stores the time it is given"
	case within(got.UTC(), wallAsUTC(want)):
		return fmt.Sprintf("the wall clock of the zone it was given in (%s) read back as UTC: the zone offset was lost. Store instants (convert to UTC, or keep the offset)", zoneName(want))
	case within(got.UTC(), wallAsUTC(local)):
		return fmt.Sprintf("the wall clock of time.Local (%s) read back as UTC: the store formats in the machine's zone and parses as UTC. Convert to UTC before storing", zoneName(local))
	case within(wallAsUTC(got.In(time.Local)), wallAsUTC(local)):
		return fmt.Sprintf("both read %s in time.Local (%s): a daylight-saving fall-back repeats that wall-clock hour, and a store that keeps local wall-clock times without their offset cannot tell the two instants apart. Store instants (UTC, or with the offset)", local.Format("2006-01-02 15:04:05.999999999"), zoneName(local))
	case within(wallAsUTC(got.In(time.Local)), want.UTC()):
		return "the UTC wall clock read back as local time (time.Local): convert back from UTC when reading"
	}
	if r := d.Round(time.Minute); r != 0 && r%(15*time.Minute) == 0 && r.Abs() <= 26*time.Hour && (d-r).Abs() <= max(s.precision, time.Second) {
		return "off by a whole zone offset: a wall-clock reading kept without its zone, and read back in another. Store instants (UTC, or with the offset)"
	}
	if _, off := want.Zone(); off%60 != 0 && d.Abs() < time.Minute {
		return fmt.Sprintf("the zone %s has seconds in its offset, which the store dropped (an offset written as ±hh:mm): store UTC, or the offset to the second", zoneName(want))
	}
	for _, p := range []time.Duration{time.Microsecond, time.Millisecond, time.Second} {
		if d < 0 && got.Equal(want.Round(p)) {
			return fmt.Sprintf("rounded to the %v: truncate instead, a stored time may come back earlier, never later", p)
		}
		if d > 0 && p > s.precision && got.Equal(want.Truncate(p)) {
			return fmt.Sprintf("truncated to whole %vs, coarser than the declared Harness.Precision %v: declare the storage's real precision, or store finer times", p, s.precision)
		}
	}
	if d < 0 {
		return "a later instant than any truncation gives: another write's time, not this one's (a write that should have been refused or had no effect)"
	}
	return "an earlier instant than the declared Precision allows: another write's time (a write that should have been refused, or was lost), or coarser storage than declared"
}

// wallAsUTC returns the instant that reads in UTC what t reads in its own
// zone: what a store that drops the offset makes of t.
func wallAsUTC(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// zoneName names t's zone with its offset.
func zoneName(t time.Time) string {
	name, off := t.Zone()
	if utc := "UTC" + fmtOffset(off); name != utc {
		return name + ", " + utc
	}
	return name
}

func fmtOffset(off int) string {
	sign := '+'
	if off < 0 {
		sign, off = '-', -off
	}
	if off%60 != 0 {
		return fmt.Sprintf("%c%02d:%02d:%02d", sign, off/3600, off/60%60, off%60)
	}
	return fmt.Sprintf("%c%02d:%02d", sign, off/3600, off/60%60)
}

// fmtTime prints t with its offset to the second (RFC 3339 drops offset
// seconds, printing UTC+00:00:01 as +00:00) and, outside UTC, the same
// instant in UTC.
func fmtTime(t time.Time) string {
	const layout = "2006-01-02T15:04:05.999999999"
	if t.Location() == time.UTC {
		return t.Format(time.RFC3339Nano)
	}
	_, off := t.Zone()
	return t.Format(layout) + fmtOffset(off) + " (" + t.UTC().Format(time.RFC3339Nano) + ")"
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
		if rec, lerr := x.load(x.st, k); lerr == nil && string(rec.Data) == "stale write" {
			x.errorf("Update with Version %d of a record at Version 2 %s, yet it wrote its Data (and ATime %s, Version %d) all the same: a stale Update must change nothing. Compare the version in the statement that writes (UPDATE ... WHERE key = ? AND version = ?), and write nothing when it differs", v, outcome(err), fmtTime(rec.ATime), rec.Version)
			return
		}
		x.expect(x.st, k, cur, fmt.Sprintf("after the refused Update with Version %d (it must change nothing)", v))
	}
}

// checkUpdateEarlierATime updates a record to an ATime before the stored
// one: the caller's time is stored as given (a store must not keep the
// later of the two, as GREATEST(atime, ?) does).
func checkUpdateEarlierATime(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	created := x.s.align(timeAt(-3 * time.Hour))
	late := x.s.align(timeAt(time.Hour))
	x.mustCreate(x.st, k, want{data: []byte("one"), atime: late, created: created})
	steps := []struct {
		atime time.Time
		what  string
	}{
		{late.Add(-time.Hour), "an hour before the stored ATime"},
		{late.Add(-time.Hour - x.s.step), "one step (Precision, or 1ns) before the stored ATime"},
		{created, "the Created time, hours before the stored ATime"},
	}
	for i, st := range steps {
		w := want{data: []byte(fmt.Sprint("update ", i)), atime: st.atime, created: created, version: uint64(i + 2)}
		if err := x.update(x.st, k, session.Record{Data: w.data, ATime: w.atime, Version: uint64(i + 1)}); !x.expectNil(err, "Update to an earlier ATime") {
			return
		}
		rec, err := x.load(x.st, k)
		if err == nil && string(rec.Data) == string(w.data) && rec.ATime.After(w.atime) {
			x.errorf("Update to ATime %s, %s: the record kept ATime %s. The caller's ATime is stored as given, earlier or later (a GREATEST(atime, ?) or max() keeps the later one; the manager's clock decides, and may be set back)", fmtTime(w.atime), st.what, fmtTime(rec.ATime))
			return
		}
		if !x.expect(x.st, k, w, fmt.Sprintf("after Update to ATime %s", st.what)) {
			return
		}
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

// checkTouchSameATime touches records to the ATime they already hold:
// the record exists, so Touch returns nil. (MySQL reports an UPDATE that
// changes no value as 0 rows affected; a store that reads that as "no
// such row" answers ErrNotFound, and the manager then drops a live
// session.)
func checkTouchSameATime(f *fixture) {
	x := storeFixture(f)
	k := x.key("k")
	at := x.s.align(timeAt(0))
	w := want{data: []byte("touched"), atime: at, created: at, version: 1}
	x.mustCreate(x.st, k, w)
	same := func(atime time.Time, what string) bool {
		x.t.Helper()
		err := x.touch(x.st, k, atime)
		if errors.Is(err, session.ErrNotFound) {
			x.errorf("Touch to %s: got %v, want nil. The record exists: an UPDATE that changes no value reports 0 rows affected on MySQL and others, which does not mean the row is missing (count found rows with CLIENT_FOUND_ROWS, or check existence before answering ErrNotFound)", what, err)
			return false
		}
		if !x.expectNil(err, "Touch to "+what) {
			return false
		}
		return x.expect(x.st, k, w, "after Touch to "+what)
	}
	if !same(at, "the ATime the record already holds, right after Create") || !same(at, "the same ATime again") {
		return
	}
	w = want{data: []byte("updated"), atime: x.s.align(timeAt(time.Minute)), created: at, version: 2}
	x.mustUpdate(x.st, k, w, 1)
	if !same(w.atime, "the ATime the last Update stored") {
		return
	}
	if x.s.precision > time.Nanosecond {
		// A time between two grid points stores as the one below: the
		// stored value does not change either.
		w.atime = w.atime.Add(x.s.precision / 2)
		same(w.atime, fmt.Sprintf("%v after the stored ATime, which truncates to it (Precision %v)", x.s.precision/2, x.s.precision))
	}
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

// Sizes of Store/Cleanup/Many: more idle records than any sensible batch
// of a batched Cleanup (and not a multiple of one), with live ones around.
const (
	manyIdle       = 2500
	manyLive       = 500
	bulkGoroutines = 8
)

// bulk runs fn(i) for i in [0, n) from a few goroutines, for the setup and
// verification of large checks; fn reports failures into l, which bulk
// reports. It returns whether there were none.
func (x *storeT) bulk(n int, fn func(c *caller, i int, l *errList)) bool {
	x.t.Helper()
	var l errList
	x.race(min(n, bulkGoroutines), nil, func(c *caller) {
		for i := c.g; i < n; i += bulkGoroutines {
			if l.stopped() {
				return
			}
			fn(c, i, &l)
		}
	})
	ok := l.empty()
	x.report(&l)
	return ok
}

// bulkCreate creates keys[i] with w(i), from a few goroutines.
func (x *storeT) bulkCreate(keys []string, w func(i int) want) bool {
	x.t.Helper()
	return x.bulk(len(keys), func(c *caller, i int, l *errList) {
		rec := w(i).record()
		err := c.call(desc("Create", keys[i]), func(ctx context.Context) error { return x.st.Create(ctx, keys[i], rec) })
		if !l.brokenCall(err) && err != nil {
			l.add("create", "Create of record %d of %d (setting up the check): %v", i+1, len(keys), err)
		}
	})
}

// bulkLoad loads keys from a few goroutines; hung or panicking calls end
// the subtest.
func (x *storeT) bulkLoad(keys []string) ([]session.Record, []error) {
	x.t.Helper()
	recs, errs := make([]session.Record, len(keys)), make([]error, len(keys))
	x.bulk(len(keys), func(c *caller, i int, l *errList) {
		errs[i] = c.call(desc("Load", keys[i]), func(ctx context.Context) error {
			var err error
			recs[i], err = x.st.Load(ctx, keys[i])
			return err
		})
		l.brokenCall(errs[i])
	})
	return recs, errs
}

// checkCleanupMany cleans up thousands of idle records among live ones.
// A batched Cleanup (DELETE ... LIMIT n in a loop, a SCAN with a COUNT)
// must go on until no idle record is left, and count them all.
func checkCleanupMany(f *fixture) {
	x := storeFixture(f)
	cutoff := x.s.align(timeAt(48 * time.Hour))
	atime := func(i int) time.Time {
		if i < manyIdle {
			// Spread over hours before the cutoff, fractions varying.
			return x.s.align(cutoff.Add(-x.s.step - time.Duration(i)*1373*time.Millisecond - time.Duration(i%977)*time.Microsecond))
		}
		return x.s.align(cutoff.Add(time.Duration(i-manyIdle) * 1111 * time.Millisecond))
	}
	keys := make([]string, manyIdle+manyLive)
	for i := range keys {
		keys[i] = x.key(fmt.Sprint("record ", i))
	}
	if !x.bulkCreate(keys, func(i int) want {
		return want{data: []byte(fmt.Sprint("record ", i)), atime: atime(i), created: atime(i).Add(-time.Hour)}
	}) {
		return
	}
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, fmt.Sprintf("Cleanup of %d idle records among %d", manyIdle, len(keys))) {
		return
	}
	survived, lost := 0, 0
	recs, errs := x.bulkLoad(keys)
	for i, err := range errs {
		switch {
		case err != nil && !errors.Is(err, session.ErrNotFound):
			x.fatalf("Load after Cleanup: %v", err)
		case i < manyIdle && err == nil:
			survived++
		case i >= manyIdle && err != nil:
			lost++
		case i >= manyIdle:
			if p := x.s.recordProblems(recs[i], want{data: []byte(fmt.Sprint("record ", i)), atime: atime(i), created: atime(i).Add(-time.Hour), version: 1}); len(p) > 0 {
				x.fatalf("a record at or after the cutoff, after Cleanup: %s", strings.Join(p, "; "))
			}
		}
	}
	if survived > 0 {
		x.errorf("Cleanup(%s) of %d idle records (and %d live ones) left %d of the idle ones, and returned %d: Cleanup must delete every record before the cutoff, however many. A batched Cleanup must repeat its batch until one deletes fewer rows than its limit (or none), not stop after the first", fmtTime(cutoff), manyIdle, manyLive, survived, n)
	}
	if lost > 0 {
		x.errorf("Cleanup(%s) deleted %d of the %d records at or after the cutoff: it must keep them", fmtTime(cutoff), lost, manyLive)
	}
	if gone := manyIdle - survived + lost; n != gone {
		x.errorf("Cleanup of %d idle records returned %d, but deleted %d: it must return how many it deleted, over all its batches", manyIdle, n, gone)
	}
	n, err = x.cleanup(x.st, cutoff)
	if x.expectNil(err, "second Cleanup") && n != survived {
		x.errorf("a second Cleanup with the same cutoff returned %d, want %d (the idle records the first one left)", n, survived)
	}
}

// checkCleanupFractions runs Cleanups with cutoffs on whole seconds and
// between them over records whose ATimes have fractions of every length,
// in several zones: Cleanup compares instants. Times kept as text and
// compared as text fail it: RFC 3339 drops trailing zeros, so
// "…:05.5Z" sorts before "…:05Z".
func checkCleanupFractions(f *fixture) {
	x := storeFixture(f)
	base := x.s.align(timeAt(72 * time.Hour).Truncate(time.Second))
	fractions := []time.Duration{0, 1, 10, 1000, 10_000, 100_000, 500_000, 5_000_000, 50_000_000, 100_000_000, 100_001_000, 123_456_789, 450_000_000, 500_000_000, 500_001_000, 999_000_000, 999_999_000, 999_999_999}
	zones := []*time.Location{Epoch.Location(), time.UTC, zoneWest, zoneEast, time.FixedZone("UTC+00:00:01", 1)}
	type rec struct {
		key   string
		atime time.Time
		gone  bool
	}
	var recs []rec
	seen := map[time.Time]bool{}
	for sec := -2; sec <= 2; sec++ {
		for _, fr := range fractions {
			at := x.s.align(base.Add(time.Duration(sec)*time.Second + fr)).UTC()
			if seen[at] {
				continue
			}
			seen[at] = true
			i := len(recs)
			recs = append(recs, rec{key: x.key(fmt.Sprint("fraction ", i)), atime: at.In(zones[i%len(zones)])})
			x.mustCreate(x.st, recs[i].key, want{data: []byte(fmt.Sprint("fraction ", i)), atime: recs[i].atime, created: base.Add(-time.Hour)})
		}
	}
	cutoffs := []time.Duration{-1500 * time.Millisecond, -time.Second + 999_999_999, 0, 1, 450_000_000, 500_000_000, 500_000_001, time.Second + 100_000_000, 2 * time.Second}
	for j, off := range cutoffs {
		cutoff := x.s.align(base.Add(off)).In(zones[(j+2)%len(zones)])
		n, err := x.cleanup(x.st, cutoff)
		if !x.expectNil(err, "Cleanup") {
			return
		}
		wantN := 0
		for i := range recs {
			if !recs[i].gone && recs[i].atime.Before(cutoff) {
				recs[i].gone = true
				wantN++
			}
		}
		bad := false
		for i, r := range recs {
			got, err := x.load(x.st, r.key)
			switch {
			case err != nil && !errors.Is(err, session.ErrNotFound):
				x.errorf("Load after Cleanup: %v", err)
				bad = true
			case r.gone && err == nil:
				x.errorf("Cleanup(%s) kept the record with ATime %s, which is before it: Cleanup compares instants. Times stored as text compare as text only in UTC with fixed-width fractions (RFC 3339 drops trailing zeros: \"…:05Z\" sorts after \"…:05.5Z\")", fmtTime(cutoff), fmtTime(got.ATime))
				bad = true
			case !r.gone && err != nil:
				x.errorf("Cleanup(%s) deleted the record with ATime %s, which is not before it: Cleanup compares instants. Times stored as text compare as text only in UTC with fixed-width fractions (RFC 3339 drops trailing zeros: \"…:05.5Z\" sorts before \"…:05Z\")", fmtTime(cutoff), fmtTime(r.atime))
				bad = true
			case !r.gone:
				if !x.expect(x.st, r.key, want{data: []byte(fmt.Sprint("fraction ", i)), atime: r.atime, created: base.Add(-time.Hour), version: 1}, "a record Cleanup kept") {
					bad = true
				}
			}
			if bad {
				return
			}
		}
		if n != wantN {
			x.errorf("Cleanup(%s) returned %d, want %d (the records before it that earlier Cleanups left)", fmtTime(cutoff), n, wantN)
			return
		}
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

// checkAliasingLaterLoad keeps the Data of one Load and makes other calls:
// what Load returned must not change. (A Load that returns a buffer the
// next Load reuses, such as database/sql's RawBytes or a scratch slice,
// passes every check that uses each result at once.)
func checkAliasingLaterLoad(f *fixture) {
	x := storeFixture(f)
	k1, k2, k3 := x.key("first"), x.key("second"), x.key("third")
	d1 := []byte("the first record's data, the longest of the three")
	d2 := []byte("second's data")
	x.mustCreate(x.st, k1, want{data: d1, atime: timeAt(0), created: timeAt(0)})
	x.mustCreate(x.st, k2, want{data: d2, atime: timeAt(0), created: timeAt(0)})
	r1, err := x.load(x.st, k1)
	if !x.expectNil(err, "Load") {
		return
	}
	changed := func(after string) bool {
		x.t.Helper()
		if !bytes.Equal(r1.Data, d1) {
			x.errorf("the Data of an earlier Load changed when %s: got %q, want %q. Load must return bytes the caller owns: copy out of any buffer the store reuses (database/sql.RawBytes, a scratch or pooled slice)", after, r1.Data, d1)
			return true
		}
		return false
	}
	if _, err := x.load(x.st, k2); !x.expectNil(err, "Load of another key") || changed("the next Load, of another key, returned") {
		return
	}
	r3, err := x.load(x.st, k1)
	if !x.expectNil(err, "Load of the same key") || changed("a later Load of the same key returned") {
		return
	}
	for i := range r3.Data {
		r3.Data[i] = '#'
	}
	if changed("the caller overwrote the Data of a later Load of the same key") {
		return
	}
	x.mustCreate(x.st, k3, want{data: []byte("third"), atime: timeAt(0), created: timeAt(0)})
	x.mustUpdate(x.st, k2, want{data: bytes.Repeat([]byte("U"), 2*len(d1)), atime: timeAt(time.Minute)}, 1)
	if _, err := x.load(x.st, k2); !x.expectNil(err, "Load") || changed("other keys were created, updated and loaded") {
		return
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

// checkKeyNoWildcards writes through keys that hold '_', a wildcard of
// SQL LIKE, and keys that are prefixes of others: each call reaches its
// own key and no other.
func checkKeyNoWildcards(f *fixture) {
	x := storeFixture(f)
	keys := []string{"abc", "aXc", "a-c", "a_c", "ab", "abcd", "a", "_", "__", "a_", "b_", "_c", "x_y", "xay", "x-y"}
	type rec struct {
		w    want
		gone bool
	}
	recs := map[string]*rec{}
	for i, k := range keys {
		w := want{data: []byte(fmt.Sprint("key ", k)), atime: timeAt(time.Duration(i) * time.Second), created: timeAt(0), version: 1}
		x.mustCreate(x.st, k, w)
		recs[k] = &rec{w: w}
	}
	// verify checks every key after a call through one of them.
	verify := func(through string) bool {
		x.t.Helper()
		for _, k := range keys {
			r := recs[k]
			got, err := x.load(x.st, k)
			switch {
			case r.gone && err == nil:
				x.errorf("%s: key %q still holds its record (%q): Delete must remove exactly its key", through, k, got.Data)
				return false
			case r.gone && !errors.Is(err, session.ErrNotFound):
				x.errorf("after %s: Load(%q): %v, want ErrNotFound", through, k, err)
				return false
			case r.gone:
			case err != nil:
				x.errorf("%s also reached key %q: Load(%q) now says %v. Keys are not patterns: compare them with =, never LIKE (where '_' matches any character) or a prefix match", through, k, k, err)
				return false
			default:
				if p := x.s.recordProblems(got, r.w); len(p) > 0 {
					x.errorf("%s also changed key %q: %s. Keys are not patterns: compare them with =, never LIKE (where '_' matches any character) or a prefix match", through, k, strings.Join(p, "; "))
					return false
				}
			}
		}
		return true
	}
	if !verify("creating them all") {
		return
	}
	for i, k := range []string{"a_c", "_", "x_y", "a_"} {
		r := recs[k]
		r.w.data, r.w.atime, r.w.version = []byte("updated "+k), timeAt(time.Hour+time.Duration(i)), r.w.version+1
		if err := x.update(x.st, k, session.Record{Data: r.w.data, ATime: r.w.atime, Version: r.w.version - 1}); !x.expectNil(err, fmt.Sprintf("Update(%q)", k)) || !verify(fmt.Sprintf("Update(%q)", k)) {
			return
		}
	}
	for i, k := range []string{"__", "_c", "b_"} {
		r := recs[k]
		r.w.atime = timeAt(2*time.Hour + time.Duration(i))
		if err := x.touch(x.st, k, r.w.atime); !x.expectNil(err, fmt.Sprintf("Touch(%q)", k)) || !verify(fmt.Sprintf("Touch(%q)", k)) {
			return
		}
	}
	for _, k := range []string{"a_c", "_", "__", "ab", "x_y", "a"} {
		recs[k].gone = true
		if err := x.del(x.st, k); !x.expectNil(err, fmt.Sprintf("Delete(%q)", k)) || !verify(fmt.Sprintf("Delete(%q)", k)) {
			return
		}
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
	if _, ok := x.st.(io.Closer); !ok {
		x.t.Log("the store does not implement io.Closer: nothing to close, nothing to check")
		return
	}
	k := x.key("closed")
	w := want{data: []byte("before close"), atime: timeAt(0), created: timeAt(0), version: 1}
	x.mustCreate(x.st, k, w)
	if _, err := x.close(x.st); err != nil {
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
	if oi, ok := x.st.(session.OwnerIndex); ok {
		_, err = x.loadOwned(oi, ownerKey("closed"))
		x.expectErr(err, session.ErrClosed, "LoadOwned after Close")
	}
	if _, err := x.close(x.st); err != nil {
		x.errorf("a second Close: %v, want nil (Close is idempotent)", err)
	}
	if _, ok := x.s.h.Unsupported[SharedStorage]; ok {
		return
	}
	// Nothing reached the storage: a new instance finds it as it was.
	other := x.open()
	if _, err := x.load(other, k); errors.Is(err, session.ErrNotFound) {
		x.errorf("a new instance over the namespace does not find the record created before Close.%s", x.notShared())
		return
	}
	x.expect(other, k, w, "in a new instance, after calls on a closed one")
	x.expectMissing(other, x.key("new"), "in a new instance, after Create on a closed one")
}

// checkCloseTwice closes one instance twice in a row and another from two
// goroutines at once: every Close returns nil and none panics (a second
// close of a channel, a double free of a pool).
func checkCloseTwice(f *fixture) {
	x := storeFixture(f)
	if _, ok := x.st.(io.Closer); !ok {
		x.t.Log("the store does not implement io.Closer: nothing to close, nothing to check")
		return
	}
	x.mustCreate(x.st, x.key("k"), want{data: []byte("x"), atime: timeAt(0), created: timeAt(0)})
	for i := 1; i <= 2; i++ {
		if _, err := x.close(x.st); err != nil {
			x.errorf("Close #%d of one instance: got error %v, want nil (Close is idempotent)", i, err)
		}
	}
	other := x.open()
	c := other.(io.Closer)
	var l errList
	x.race(2, nil, func(r *caller) {
		err := r.call("Close()", func(context.Context) error { return c.Close() })
		if l.brokenCall(err) {
			return
		}
		if err != nil {
			l.add("concurrent Close", "Close of one instance from two goroutines at once: got error %v on one of them, want nil from both (Close is idempotent)", err)
		}
	})
	x.report(&l)
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

// notShared is the hint for a second instance that finds nothing of the
// first's: the usual cause is a NewStore that ignores its namespace.
func (x *storeT) notShared() string {
	return fmt.Sprintf(" It found no record at all, as if it were over other storage: does Harness.NewStore open the storage that namespace names (%q: the same directory, table or key prefix on every call with that namespace), rather than a fresh one (tb.TempDir(), a new in-memory map) on each call? A store whose instances cannot share anything declares Unsupported[conformance.SharedStorage]", x.ns)
}

// seesRecord checks that st shows w under key within Staleness.
func (x *storeT) seesRecord(st session.Store, key string, w want, when string) {
	x.t.Helper()
	absent := false
	problem := x.eventually(func() string {
		rec, err := x.load(st, key)
		absent = errors.Is(err, session.ErrNotFound)
		if err != nil {
			return fmt.Sprintf("Load: error %v", err)
		}
		if p := x.s.recordProblems(rec, w); len(p) > 0 {
			return strings.Join(p, "; ")
		}
		return ""
	})
	if problem != "" {
		hint := ""
		if absent && w.version == 1 {
			hint = x.notShared()
		}
		x.errorf("second instance %s: did not see the record %s: %s.%s", when, x.staleNote(), problem, hint)
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
