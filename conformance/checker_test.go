package conformance

import (
	"encoding/base64"
	"encoding/hex"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The session subtests assert things no store can break (the cookie never
// reaches the store, no raw id in it, no store call for an unused
// session): they guard core's manager. The tests below prove their
// checkers are not vacuous, by feeding them the leaks they must catch.

func TestHostileProblem(t *testing.T) {
	const v = "../../etc/passwd"
	leaks := []spyCall{
		{op: "Load", key: v},
		{op: "Create", key: "abc" + v},
		{op: "Update", key: storeKey("x"), data: []byte(`{"ip":"` + v + `"}`)},
		{op: "Delete", key: "a b"},
		{op: "Touch", key: ""},
	}
	for _, c := range leaks {
		if hostileProblem(c, v) == "" {
			t.Errorf("hostileProblem(%+v) found nothing", c)
		}
	}
	if p := hostileProblem(spyCall{op: "Load", key: strings.Repeat("-", 8)}, "--"); p != "" {
		t.Errorf("a short value inside a key is not a leak, got %q", p)
	}
	clean := []spyCall{
		{op: "Load", key: storeKey(v)},
		{op: "Create", key: storeKey("fresh"), data: []byte(`{"v":1,"ip":"192.0.2.1","data":{"count":1}}`)},
		{op: "Cleanup"},
	}
	for _, c := range clean {
		if p := hostileProblem(c, v); p != "" {
			t.Errorf("hostileProblem(%+v) = %q, want nothing", c, p)
		}
	}
}

func TestRawIDProblem(t *testing.T) {
	id := newID()
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil {
		t.Fatal(err)
	}
	leaks := map[string][]byte{
		"as is":    []byte("key-" + id),
		"raw":      append([]byte("data:"), raw...),
		"hex":      []byte(hex.EncodeToString(raw)),
		"HEX":      []byte(strings.ToUpper(hex.EncodeToString(raw))),
		"std b64":  []byte(base64.StdEncoding.EncodeToString(raw)),
		"in JSON":  []byte(`{"v":1,"ip":"x","data":{"sid":"` + id + `"}}`),
		"signed":   []byte(id + ".signature"),
		"raw std ": []byte(base64.RawStdEncoding.EncodeToString(raw)),
	}
	for name, hay := range leaks {
		if rawIDProblem(hay, id) == "" {
			t.Errorf("%s: the id was not found", name)
		}
	}
	if p := rawIDProblem([]byte(storeKey(id)), id); p != "" {
		t.Errorf("the hashed store key was taken for a raw id: %s", p)
	}
}

func TestTimeProblem(t *testing.T) {
	s := &suite{precision: time.Microsecond}
	at := timeAt(0) // .123456789
	cases := []struct {
		got time.Time
		ok  bool
	}{
		{at, true},
		{at.UTC(), true},
		{at.Truncate(time.Microsecond), true},
		{at.Add(-time.Microsecond), true},
		{at.Add(-time.Microsecond - 1), false},
		{at.Add(1), false},
		{at.Round(time.Microsecond), false},
		{time.Time{}, false},
	}
	for _, c := range cases {
		if p := s.timeProblem(c.got, at); (p == "") != c.ok {
			t.Errorf("timeProblem(%s, %s) = %q, want ok=%v", fmtTime(c.got), fmtTime(at), p, c.ok)
		}
	}
	exact := &suite{}
	if p := exact.timeProblem(at.Add(-1), at); p == "" {
		t.Errorf("with Precision 0 a time 1ns early must be a problem")
	}
}

func TestAlign(t *testing.T) {
	for _, p := range []time.Duration{0, time.Microsecond, time.Millisecond, time.Second, 2 * time.Second} {
		s := &suite{precision: p}
		a := s.align(Epoch)
		if a.After(Epoch) || Epoch.Sub(a) >= max(p, 1) {
			t.Errorf("align(%v) with Precision %v = %v", Epoch, p, a)
		}
		if p > 0 && a.UnixNano()%int64(p) != 0 {
			t.Errorf("align with Precision %v is off the grid: %v", p, a)
		}
		if a.Location() != Epoch.Location() {
			t.Errorf("align changed the zone")
		}
	}
}

func TestNamespace(t *testing.T) {
	s, err := newSuite(refHarness("", 0, 0))
	if err != nil {
		t.Fatal(err)
	}
	valid := regexp.MustCompile(`^[a-z0-9_]{1,40}$`)
	seen := map[string]bool{}
	for range 100 {
		ns := s.namespace(t)
		if !valid.MatchString(ns) || seen[ns] {
			t.Fatalf("namespace %q: invalid or repeated", ns)
		}
		seen[ns] = true
	}
}

// TestChecks keeps the subtest list well-formed: names are CamelCase
// segments, unique, grouped contiguously (so the tree runs each once), and
// no name is both a subtest and a group.
func TestChecks(t *testing.T) {
	segment := regexp.MustCompile(`^[A-Z][A-Za-z0-9]*$`)
	seen := map[string]bool{}
	for i, c := range checks {
		for _, seg := range strings.Split(c.name, "/") {
			if !segment.MatchString(seg) {
				t.Errorf("%s: segment %q is not CamelCase", c.name, seg)
			}
		}
		if seen[c.name] {
			t.Errorf("%s: listed twice", c.name)
		}
		seen[c.name] = true
		if c.rule == "" || !strings.HasSuffix(c.rule, ".") || c.run == nil {
			t.Errorf("%s: missing rule or body", c.name)
		}
		if c.needs != "" && !slices.Contains(capabilities, c.needs) {
			t.Errorf("%s: unknown capability %q", c.name, c.needs)
		}
		if top := strings.SplitN(c.name, "/", 2)[0]; top != "Store" && top != "Session" {
			t.Errorf("%s: not under Store or Session", c.name)
		}
		// Every group this check belongs to must have ended nowhere before.
		parts := strings.Split(c.name, "/")
		for j := 1; j < len(parts); j++ {
			group := strings.Join(parts[:j], "/") + "/"
			for _, earlier := range checks[:i] {
				if strings.HasPrefix(earlier.name, group) && i > 0 && !strings.HasPrefix(checks[i-1].name, group) {
					t.Errorf("%s: group %s is split (earlier member %s)", c.name, group, earlier.name)
					break
				}
			}
		}
	}
	for _, c := range checks {
		p := parts(c.name)
		for j := 1; j < len(p); j++ {
			if group := strings.Join(p[:j], "/"); seen[group] {
				t.Errorf("%s: its group %s is also a subtest", c.name, group)
			}
		}
	}
	got := Subtests()
	if len(got) != len(checks) {
		t.Fatalf("Subtests() has %d entries, want %d", len(got), len(checks))
	}
	for i, st := range got {
		if st.Name != checks[i].name || st.Rule != checks[i].rule || st.Needs != checks[i].needs {
			t.Errorf("Subtests()[%d] = %+v, want %s", i, st, checks[i].name)
		}
	}
}

func parts(name string) []string { return strings.Split(name, "/") }

// TestEveryStoreCheckIsMeant requires every "Store/..." subtest to catch
// at least one broken store of TestBroken, so that none is vacuous. (The
// "Session/..." subtests that no store defect can trip guard core's
// manager; their checkers are tested above.)
func TestEveryStoreCheckIsMeant(t *testing.T) {
	meant := map[string]bool{}
	for _, c := range brokenCases {
		for _, f := range c.fails {
			meant[f] = true
		}
	}
	for _, c := range checks {
		if strings.HasPrefix(c.name, "Store/") && !meant[c.name] {
			t.Errorf("no broken store is listed as caught by %s: the check may be vacuous", c.name)
		}
	}
}
