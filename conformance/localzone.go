package conformance

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Store/Time/LocalZone catches stores that keep wall-clock times of the
// machine's zone, time.Local: formatted in it and parsed as UTC, or kept
// in it without the offset. On a machine in UTC both behave exactly like
// a correct store, so no choice of instants can catch them there: the
// process's zone itself has to change. Go reads TZ once, so the subtest
// runs itself again in a subprocess (the same test binary, restricted to
// this subtest with -test.run) with TZ naming a zone file the suite
// writes: a zone with an odd offset and a daylight-saving fall-back at
// the suite's own instants, in 2041. It also checks the machine's own
// zone in-process when that zone has a fall-back that year.

// localZoneEnv marks the subprocess: its value is the name of the subtest
// to run in the zone TZ names.
const localZoneEnv = "WEBSESSION_CONFORMANCE_LOCAL_ZONE"

// The zone the subprocess runs in: UTC-02:15 with daylight-saving time
// until the fall-back at setZoneFallBack, UTC-03:15 after it; the hour of
// wall-clock time before it repeats after it.
var (
	setZoneFallBack = time.Date(2041, time.March, 7, 8, 0, 0, 0, time.UTC)
	setZoneDST      = int32(-(2*3600 + 15*60))
	setZoneStd      = setZoneDST - 3600
)

func checkTimeLocalZone(f *fixture) {
	if os.Getenv(localZoneEnv) == f.t.Name() {
		checkSetZone(f)
		return
	}
	x := storeFixture(f)
	if at, d, ok := fallBack(time.Local, Epoch.Year()); ok {
		if !x.ambiguousHour(at, d, "time.Local, the machine's zone") {
			return
		}
	} else {
		x.t.Logf("time.Local (%s) has no daylight-saving fall-back in %d: the repeated hour is checked in the subprocess only", zoneName(Epoch.In(time.Local)), Epoch.Year())
	}
	x.inSetZone()
}

// checkSetZone is the subtest's body in the subprocess.
func checkSetZone(f *fixture) {
	_, before := setZoneFallBack.Add(-time.Second).In(time.Local).Zone()
	_, after := setZoneFallBack.In(time.Local).Zone()
	if before != int(setZoneDST) || after != int(setZoneStd) {
		f.t.Skipf("the local zone did not change with TZ=%s on this system (offsets %s and %s around %s, want %s and %s): the check needs a system where Go takes time.Local from TZ", os.Getenv("TZ"), fmtOffset(before), fmtOffset(after), setZoneFallBack.Format(time.RFC3339), fmtOffset(int(setZoneDST)), fmtOffset(int(setZoneStd)))
	}
	x := storeFixture(f)
	x.ambiguousHour(setZoneFallBack, time.Hour, fmt.Sprintf("time.Local, set with TZ to a zone at UTC%s with a fall-back to UTC%s", fmtOffset(int(setZoneDST)), fmtOffset(int(setZoneStd))))
}

// fallBack finds the first daylight-saving fall-back of loc in year: the
// instant at, where the offset drops by d, so that the d of wall-clock
// time before at repeats after it.
func fallBack(loc *time.Location, year int) (at time.Time, d time.Duration, ok bool) {
	t := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC)
	end := t.AddDate(1, 0, 0)
	offset := func(t time.Time) int { _, off := t.In(loc).Zone(); return off }
	for ; t.Before(end); t = t.Add(time.Hour) {
		o1, o2 := offset(t), offset(t.Add(time.Hour))
		if o2 >= o1 {
			continue
		}
		lo, hi := t, t.Add(time.Hour) // offset(lo) == o1, offset(hi) == o2
		for hi.Sub(lo) > time.Second {
			mid := lo.Add(hi.Sub(lo) / 2).Truncate(time.Second)
			if offset(mid) == o1 {
				lo = mid
			} else {
				hi = mid
			}
		}
		return hi, time.Duration(o1-o2) * time.Second, true
	}
	return time.Time{}, 0, false
}

// ambiguousHour stores pairs of instants d apart that read the same in
// time.Local, across its fall-back at at, and checks that they come back
// apart and that Cleanup with the fall-back as cutoff tells them apart.
func (x *storeT) ambiguousHour(at time.Time, d time.Duration, zone string) bool {
	x.t.Helper()
	type pair struct {
		key     string
		atime   time.Time
		created time.Time
		before  bool
	}
	var recs []pair
	for i, off := range []time.Duration{0, d/2 + 123_456_789, d - time.Second + 999_999_999} {
		a := x.s.align(at.Add(-d + off))
		b := a.Add(d)
		recs = append(recs,
			pair{x.key(fmt.Sprint("before the fall-back ", i)), a.In(time.Local), b.In(time.Local), true},
			pair{x.key(fmt.Sprint("after the fall-back ", i)), b.In(time.Local), a.In(time.Local), false})
	}
	wantOf := func(p pair) want {
		return want{data: []byte(p.key), atime: p.atime, created: p.created, version: 1}
	}
	for _, p := range recs {
		x.mustCreate(x.st, p.key, wantOf(p))
	}
	for _, p := range recs {
		if !x.expect(x.st, p.key, wantOf(p), fmt.Sprintf("in %s, times in the hour its fall-back repeats (%s and %s read the same there)", zone, fmtTime(p.atime), fmtTime(p.created))) {
			return false
		}
	}
	cutoff := at.In(time.Local)
	n, err := x.cleanup(x.st, cutoff)
	if !x.expectNil(err, "Cleanup") {
		return false
	}
	for _, p := range recs {
		rec, err := x.load(x.st, p.key)
		switch {
		case p.before && err == nil:
			x.errorf("in %s, Cleanup(%s), the fall-back instant, kept the record with ATime %s (it is an hour before the cutoff, but reads the same in time.Local as %s, after it): the store compares local wall-clock times. Store instants (UTC, or with the offset)", zone, fmtTime(cutoff), fmtTime(rec.ATime), fmtTime(p.created))
			return false
		case !p.before && err != nil:
			x.errorf("in %s, Cleanup(%s), the fall-back instant, deleted the record with ATime %s (after the cutoff, but it reads the same in time.Local as %s, before it): the store compares local wall-clock times. Store instants (UTC, or with the offset)", zone, fmtTime(cutoff), fmtTime(p.atime), fmtTime(p.created))
			return false
		}
	}
	if n != len(recs)/2 {
		x.errorf("in %s, Cleanup(%s) returned %d, want %d", zone, fmtTime(cutoff), n, len(recs)/2)
		return false
	}
	return true
}

// inSetZone runs this subtest again in a subprocess whose local zone is
// the zone of setZoneFallBack, and reports what failed there.
func (x *storeT) inSetZone() {
	x.t.Helper()
	zone := filepath.Join(x.t.TempDir(), "conformance-zone")
	if err := os.WriteFile(zone, setZoneTZif(), 0o644); err != nil {
		x.t.Fatalf("writing the zone file for the subprocess: %v", err)
	}
	name := x.t.Name()
	var pattern []string
	for _, elem := range strings.Split(name, "/") {
		pattern = append(pattern, "^"+regexp.QuoteMeta(elem)+"$")
	}
	timeout := 2*x.s.watchdog + time.Minute
	args := []string{"-test.run=" + strings.Join(pattern, "/"), "-test.v", "-test.count=1", "-test.timeout=" + timeout.String()}
	for _, a := range os.Args[1:] {
		if !strings.HasPrefix(a, "-test.") {
			args = append(args, a) // the package's own flags, such as a DSN
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout+10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(quickExit(os.Environ(), "TZ", localZoneEnv), "TZ="+zone, localZoneEnv+"="+name)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	block := subtestOutput(out.Bytes(), name)
	switch {
	case bytes.Contains(out.Bytes(), []byte("--- PASS: "+name+" ")):
	case bytes.Contains(out.Bytes(), []byte("--- SKIP: "+name+" ")):
		x.t.Logf("in the subprocess with TZ set: skipped:\n%s", block)
	case bytes.Contains(out.Bytes(), []byte("--- FAIL: "+name+" ")):
		x.errorf("in a subprocess whose local zone is UTC%s with a daylight-saving fall-back to UTC%s at %s (TZ set to a zone file the suite wrote), this subtest failed:\n%s", fmtOffset(int(setZoneDST)), fmtOffset(int(setZoneStd)), setZoneFallBack.Format(time.RFC3339), block)
	default:
		x.errorf("could not run this subtest again in a subprocess with TZ set (%s %s: %v); it needs the test binary to run its own subtest when asked with -test.run (skip it with Harness.Skip[%q] if it cannot). Output:\n%s", os.Args[0], strings.Join(args, " "), err, x.c.name, lastLines(out.Bytes(), 30))
	}
}

// quickExit returns env without the variables named in drop, and with
// GORACE telling a race-enabled subprocess not to wait a second before it
// exits (its default), unless the caller chose that wait.
func quickExit(env []string, drop ...string) []string {
	var out []string
	gorace := ""
	for _, e := range env {
		name, value, _ := strings.Cut(e, "=")
		switch {
		case name == "GORACE":
			gorace = value
		case !slices.Contains(drop, name):
			out = append(out, e)
		}
	}
	if !strings.Contains(gorace, "atexit_sleep_ms") {
		gorace = strings.TrimSpace(gorace + " atexit_sleep_ms=0")
	}
	return append(out, "GORACE="+gorace)
}

// subtestOutput returns what the subprocess logged for the subtest name.
func subtestOutput(out []byte, name string) string {
	var lines []string
	in := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(trimmed, "=== RUN   "+name) || strings.HasPrefix(trimmed, "=== CONT  "+name):
			in = true
		case strings.HasPrefix(trimmed, "--- ") || strings.HasPrefix(trimmed, "=== "):
			in = false
		case in && strings.HasPrefix(trimmed, "rule: "):
			// The parent's message quotes the rule already.
		case in:
			lines = append(lines, "\t"+line)
		}
	}
	return strings.Join(lines, "\n")
}

// lastLines returns the last n lines of out.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// setZoneTZif returns the zone of the subprocess as a TZif (RFC 8536)
// version 2 file: standard time, a spring-forward thirty days before
// setZoneFallBack, and the fall-back at it.
func setZoneTZif() []byte {
	var b bytes.Buffer
	be := func(v any) { _ = binary.Write(&b, binary.BigEndian, v) }
	header := func(timecnt, typecnt, charcnt int) {
		b.WriteString("TZif2")
		b.Write(make([]byte, 15))
		for _, n := range []int{0, 0, 0, timecnt, typecnt, charcnt} { // isutcnt, isstdcnt, leapcnt, ...
			be(uint32(n))
		}
	}
	// The version 1 block, which readers of version 2 skip: one type.
	header(0, 1, 4)
	be(setZoneStd)
	b.Write([]byte{0, 0})
	b.WriteString("CFS\x00")
	// The version 2 block: 64-bit transition times.
	const chars = "CFS\x00CFD\x00"
	header(2, 2, len(chars))
	be(setZoneFallBack.AddDate(0, 0, -30).Unix())
	be(setZoneFallBack.Unix())
	b.Write([]byte{1, 0}) // to daylight-saving time, then back
	be(setZoneStd)
	b.Write([]byte{0, 0}) // not DST, designation "CFS"
	be(setZoneDST)
	b.Write([]byte{1, 4}) // DST, designation "CFD"
	b.WriteString(chars)
	b.WriteString("\n\n") // no rule for later times: the last type holds
	return b.Bytes()
}
