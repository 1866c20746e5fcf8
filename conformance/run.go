package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// DefaultOpTimeout is the OpTimeout used when Harness.OpTimeout is 0.
const DefaultOpTimeout = 10 * time.Second

// Run runs the whole suite against the store that h describes, as subtests
// of t named "Store/..." (the Store contract, call by call) and
// "Session/..." (the session manager of core over the store, through real
// HTTP requests). Subtests lists every name and the rule it checks.
//
// Run fails t at once, running nothing, if h is unusable: no NewStore, a
// negative duration, an unknown capability, a Skip key that names no
// subtest, or a skip without a reason.
func Run(t *testing.T, h Harness) {
	t.Helper()
	s, err := newSuite(h)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.unsupportedNotes() {
		t.Log(c)
	}
	s.runGroup(t, "", checks)
}

// Subtest describes one subtest of Run.
type Subtest struct {
	// Name is the subtest's path below the entry point, such as
	// "Store/Update/StaleVersion": the key for Harness.Skip, and what
	// appears after the test's own name in go test's output and -run.
	Name string
	// Rule is the rule of the Store contract or of the session semantics
	// that the subtest checks.
	Rule string
	// Needs is the capability the subtest needs, or "" if every store must
	// pass it. The subtest is skipped when the store declares the
	// capability unsupported.
	Needs Capability
	// Implements names the optional interface of package session that the
	// subtest checks, such as "session.OwnerIndex", or "". The subtest is
	// skipped, with that reason, for a store that does not implement it.
	Implements string
}

// Subtests returns every subtest of Run, in the order Run runs them. The
// names are stable: a rename is a breaking change of this module.
func Subtests() []Subtest {
	out := make([]Subtest, len(checks))
	for i, c := range checks {
		out[i] = Subtest{Name: c.name, Rule: c.rule, Needs: c.needs, Implements: c.implements}
	}
	return out
}

// check is one subtest of Run: its path, the rule it enforces, the
// capability it needs, the optional interface it checks, and its body.
type check struct {
	name       string
	rule       string
	needs      Capability
	implements string
	run        func(f *fixture)
}

// fixture is what a check's body gets: its test, the suite, and itself
// (for the rule quoted in failure messages).
type fixture struct {
	t *testing.T
	s *suite
	c *check
}

// errorf reports a broken rule: what was expected, what happened, and the
// rule it breaks.
func (f *fixture) errorf(format string, args ...any) {
	f.t.Helper()
	f.t.Errorf("%s\n    rule: %s", fmt.Sprintf(format, args...), f.c.rule)
}

// fatalf is errorf that ends the subtest.
func (f *fixture) fatalf(format string, args ...any) {
	f.t.Helper()
	f.t.Fatalf("%s\n    rule: %s", fmt.Sprintf(format, args...), f.c.rule)
}

// suite is a validated Harness with its defaults filled in.
type suite struct {
	h          Harness
	precision  time.Duration
	step       time.Duration // the smallest distinguishable time difference
	maxPayload int
	staleness  time.Duration
	opTimeout  time.Duration
	watchdog   time.Duration // how long a call may run past its deadline
	runID      string
	seq        atomic.Int64
	// ownerIndex is whether the stores implement session.OwnerIndex, as
	// the first store opened showed: 0 not known yet, 1 yes, 2 no.
	ownerIndex atomic.Int32
}

// noteOwnerIndex remembers whether the stores implement session.OwnerIndex.
func (s *suite) noteOwnerIndex(st session.Store) {
	v := int32(2)
	if _, ok := st.(session.OwnerIndex); ok {
		v = 1
	}
	s.ownerIndex.CompareAndSwap(0, v)
}

func newSuite(h Harness) (*suite, error) {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if h.NewStore == nil {
		bad("Harness.NewStore is nil: set it to a function that returns the store under test over the namespace it is given")
	}
	if h.Precision < 0 {
		bad("Harness.Precision is negative (%v): use 0 for stores that keep time.Time exactly", h.Precision)
	} else if h.Precision > 0 && time.Second%h.Precision != 0 && h.Precision%time.Second != 0 {
		bad("Harness.Precision %v is neither a divisor nor a multiple of a second: give the storage's real resolution (1µs, 1ms, 1s)", h.Precision)
	}
	if h.MaxPayload < 0 {
		bad("Harness.MaxPayload is negative (%d): use 0 for session.DefaultMaxDataSize", h.MaxPayload)
	}
	if h.Staleness < 0 {
		bad("Harness.Staleness is negative (%v)", h.Staleness)
	}
	if h.OpTimeout < 0 {
		bad("Harness.OpTimeout is negative (%v): use 0 for the default %v", h.OpTimeout, DefaultOpTimeout)
	}
	for c, reason := range h.Unsupported {
		if !slices.Contains(capabilities, c) {
			bad("Harness.Unsupported names an unknown capability %q (known: %v)", c, capabilities)
		}
		if strings.TrimSpace(reason) == "" {
			bad("Harness.Unsupported[%q] gives no reason: say why the store lacks it", c)
		}
	}
	known := skippable()
	for name, reason := range h.Skip {
		if !known[name] {
			bad("Harness.Skip names no subtest: %q%s (see conformance.Subtests or the README for the names)", name, suggest(name, known))
		}
		if strings.TrimSpace(reason) == "" {
			bad("Harness.Skip[%q] gives no reason: say why it is skipped", name)
		}
	}
	if len(problems) > 0 {
		sort.Strings(problems)
		return nil, errors.New("conformance: unusable Harness:\n\t" + strings.Join(problems, "\n\t"))
	}
	s := &suite{
		h:          h,
		precision:  h.Precision,
		step:       max(h.Precision, time.Nanosecond),
		maxPayload: h.MaxPayload,
		staleness:  h.Staleness,
		opTimeout:  h.OpTimeout,
	}
	if s.maxPayload == 0 {
		s.maxPayload = session.DefaultMaxDataSize
	}
	if s.opTimeout == 0 {
		s.opTimeout = DefaultOpTimeout
	}
	s.watchdog = s.opTimeout + max(s.opTimeout, 100*time.Millisecond)
	var b [3]byte
	_, _ = rand.Read(b[:])
	s.runID = hex.EncodeToString(b[:])
	return s, nil
}

// capabilities lists every Capability constant, for validation.
var capabilities = []Capability{SharedStorage}

// skippable returns every name a Skip key may hold: each subtest, each
// group of subtests, and each sub-benchmark of RunBenchmarks.
func skippable() map[string]bool {
	known := make(map[string]bool)
	for _, c := range checks {
		parts := strings.Split(c.name, "/")
		for i := range parts {
			known[strings.Join(parts[:i+1], "/")] = true
		}
	}
	for _, b := range benchmarks {
		known[b.name] = true
	}
	return known
}

// suggest names the known subtest closest to a mistyped one.
func suggest(name string, known map[string]bool) string {
	best, bestD := "", len(name)/3+1
	for k := range known {
		if d := editDistance(strings.ToLower(name), strings.ToLower(k)); d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(", did you mean %q?", best)
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func (s *suite) unsupportedNotes() []string {
	var notes []string
	for c, reason := range s.h.Unsupported {
		notes = append(notes, fmt.Sprintf("store lacks capability %s (%s): the subtests that need it are skipped", c, reason))
	}
	sort.Strings(notes)
	return notes
}

// runGroup runs cs, whose names all start with prefix, as a tree of
// subtests: one t.Run per path segment, so a documented name is exactly
// the path go test prints.
func (s *suite) runGroup(t *testing.T, prefix string, cs []check) {
	for i := 0; i < len(cs); {
		seg := firstSegment(cs[i].name, prefix)
		j := i + 1
		for j < len(cs) && firstSegment(cs[j].name, prefix) == seg {
			j++
		}
		group := cs[i:j]
		path := seg
		if prefix != "" {
			path = prefix + "/" + seg
		}
		t.Run(seg, func(t *testing.T) {
			if reason, ok := s.h.Skip[path]; ok {
				t.Skipf("skipped by Harness.Skip[%q]: %s", path, reason)
			}
			if len(group) == 1 && group[0].name == path {
				s.runCheck(t, &group[0])
				return
			}
			s.runGroup(t, path, group)
		})
		i = j
	}
}

func firstSegment(name, prefix string) string {
	if prefix != "" {
		name = strings.TrimPrefix(name, prefix+"/")
	}
	seg, _, _ := strings.Cut(name, "/")
	return seg
}

func (s *suite) runCheck(t *testing.T, c *check) {
	if c.needs != "" {
		if reason, ok := s.h.Unsupported[c.needs]; ok {
			t.Skipf("needs capability %s, which the store lacks: %s", c.needs, reason)
		}
	}
	c.run(&fixture{t: t, s: s, c: c})
}

// namespace returns a namespace no other subtest of any run uses, readable
// enough to tell which subtest left it behind: [a-z0-9_]{1,40}.
func (s *suite) namespace(tb testing.TB) string {
	name := tb.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		if j := strings.LastIndexByte(name[:i], '/'); j >= 0 {
			name = name[j+1:]
		}
	}
	var slug []byte
	for i := 0; i < len(name) && len(slug) < 20; i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
			slug = append(slug, c)
		case 'A' <= c && c <= 'Z':
			slug = append(slug, c+'a'-'A')
		case c == '/':
			slug = append(slug, '_')
		}
	}
	return fmt.Sprintf("cf_%s_%s_%d", slug, s.runID, s.seq.Add(1))
}

// hungError reports a store call that did not return within the
// watchdog's bound, though its context's deadline had passed.
type hungError struct {
	call    string // the call, as Op(arguments)
	after   time.Duration
	timeout time.Duration // Harness.OpTimeout
	where   string        // where it ran, if not on the subtest's own goroutine
	before  string        // the last call of the subtest that returned, if any
}

func (e *hungError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conformance: Store.%s did not return within %v%s, although its context's deadline (Harness.OpTimeout %v) had passed.", e.call, e.after, e.where, e.timeout)
	op, _, _ := strings.Cut(e.call, "(")
	if e.before != "" {
		fmt.Fprintf(&b, " The call before it, Store.%s: if that call left a lock held (a return path without Unlock, often an error path), every later call waits for it forever, so look there first; otherwise %s itself blocks without watching its context.", e.before, op)
	} else {
		fmt.Fprintf(&b, " %s blocks without watching its context, or waits for a lock that an earlier call never released.", op)
	}
	return b.String()
}

// panicError reports a store call that panicked.
type panicError struct {
	call  string // the call, as Op(arguments)
	value any
	stack []byte
}

func (e *panicError) Error() string {
	hint := ""
	if strings.HasPrefix(e.call, "Close(") {
		hint = " (Close must be idempotent: a second Close, or two at once, returns nil and panics never)"
	}
	return fmt.Sprintf("conformance: Store.%s panicked%s: %v\n%s", e.call, hint, e.value, e.stack)
}

// isBroken reports whether err is a hung or panicking call rather than an
// error the store returned.
func isBroken(err error) bool {
	var h *hungError
	var p *panicError
	return errors.As(err, &h) || errors.As(err, &p)
}

type result[T any] struct {
	v   T
	err error
}

// call runs one store call, described as Op(arguments), with a context
// bounded by OpTimeout, on its own goroutine, so that a call that hangs
// despite its deadline (or panics) fails the subtest that made it instead
// of the whole run.
func call[T any](s *suite, parent context.Context, desc string, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(parent, s.opTimeout)
	defer cancel()
	done := make(chan result[T], 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				var zero T
				done <- result[T]{zero, &panicError{call: desc, value: p, stack: debug.Stack()}}
			}
		}()
		v, err := fn(ctx)
		done <- result[T]{v, err}
	}()
	wd := time.NewTimer(s.watchdog)
	defer wd.Stop()
	select {
	case r := <-done:
		return r.v, r.err
	case <-wd.C:
		var zero T
		return zero, &hungError{call: desc, after: s.watchdog, timeout: s.opTimeout}
	}
}

// desc describes a call for messages: Op("key…").
func desc(op, key string) string { return op + "(" + short(key) + ")" }

// outcome describes how a call ended, for messages: "returned nil" or
// "returned <error>" with the sentinel's name when it wraps one.
func outcome(err error) string {
	if err == nil {
		return "returned nil"
	}
	for _, target := range []error{session.ErrNotFound, session.ErrExists, session.ErrConflict, session.ErrInvalidKey, session.ErrTooLarge, session.ErrClosed, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, target) {
			if err == target {
				return "returned " + sentinelName(target)
			}
			return fmt.Sprintf("returned %q (wrapping %s)", err, sentinelName(target))
		}
	}
	return fmt.Sprintf("returned %q", err)
}

// align moves t down to the storage's time grid (multiples of Precision
// since the Unix epoch), where storing loses nothing: boundary checks use
// aligned instants so that their outcome does not depend on truncation.
func (s *suite) align(t time.Time) time.Time {
	if s.precision <= 0 {
		return t
	}
	p := int64(s.precision)
	r := t.UnixNano() % p
	if r < 0 {
		r += p
	}
	return t.Add(-time.Duration(r))
}
