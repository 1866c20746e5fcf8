package conformance

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The concurrency checks call the store directly on the goroutines that
// race: a goroutine and a timer per call (as call does for the subtest's
// own goroutine) would spread the calls apart and hide check-then-act
// races. Racing goroutines meet at a spinning barrier before each round,
// then each waits its own offset, so that the two calls of a round start
// a chosen time apart. Each call's start is measured; a pair race goes
// on, round after round, until the measured offsets have covered every
// part of the range where the calls overlap several times over. On a
// busy machine, where a thread is often paused, that takes more rounds,
// not more luck. A single watchdog on the subtest's goroutine still fails
// the subtest, naming the call, if one hangs.

// Timing of the barrier before each round of a race: the round starts
// raceLead after the last goroutine arrived, time for the others,
// spinning, to see it; a goroutine that spun for raceSpin sleeps instead,
// and then the round starts raceWake after the last arrival, time to wake
// up. These only shape the rounds; nothing about time is asserted.
const (
	raceLead = 2 * time.Microsecond
	raceSpin = 50 * time.Microsecond
	raceWake = 500 * time.Microsecond
)

// slot is what the watchdog knows of one racing goroutine.
type slot struct {
	call  atomic.Pointer[string]   // the call in flight, as Op(arguments)
	since atomic.Int64             // when it started (Unix ns), 0 when none is
	last  atomic.Pointer[lastCall] // the last call that returned
}

type lastCall struct {
	desc string
	err  error
}

// caller makes store calls on a racing goroutine.
type caller struct {
	g    int // the goroutine's index in the race
	s    *suite
	slot *slot
	// ctx is the context of the goroutine's calls, made again whenever a
	// tenth of OpTimeout has passed, so that every call's deadline is at
	// least nine tenths of OpTimeout away without a timer per call.
	ctx    context.Context
	cancel context.CancelFunc
	made   time.Time
	began  time.Time     // when the last call started
	took   time.Duration // how long the store took on the last call
	first  time.Time     // when the first call since it was reset started
}

// context returns the context for the next call.
func (c *caller) context() context.Context {
	if c.ctx == nil || time.Since(c.made) > c.s.opTimeout/10 {
		c.release()
		c.made = time.Now()
		c.ctx, c.cancel = context.WithDeadline(context.Background(), c.made.Add(c.s.opTimeout))
	}
	return c.ctx
}

func (c *caller) release() {
	if c.cancel != nil {
		c.cancel()
		c.ctx, c.cancel = nil, nil
	}
}

// call runs fn with a context bounded by OpTimeout, directly on this
// goroutine, and turns a panic into a *panicError.
func (c *caller) call(desc string, fn func(ctx context.Context) error) (err error) {
	ctx := c.context()
	c.slot.call.Store(&desc)
	t0 := time.Now()
	c.began = t0
	if c.first.IsZero() {
		c.first = t0
	}
	c.slot.since.Store(t0.UnixNano())
	defer func() {
		if p := recover(); p != nil {
			err = &panicError{call: desc, value: p, stack: debug.Stack()}
		}
		c.took = time.Since(t0)
		c.slot.since.Store(0)
		c.slot.last.Store(&lastCall{desc, err})
	}()
	return fn(ctx)
}

// race runs fn on n goroutines at once and waits for them: one round of
// rounds. A hung call ends the subtest.
func (x *storeT) race(n int, offset func(g int) time.Duration, fn func(c *caller)) {
	x.t.Helper()
	var off func(r, g int) time.Duration
	if offset != nil {
		off = func(_, g int) time.Duration { return offset(g) }
	}
	x.rounds(n, 1, off, func(c *caller, _ int) { fn(c) })
}

// rounds runs fn(c, r) for r in [0, rounds) on each of n goroutines; see
// runRounds. A hung call ends the subtest.
func (x *storeT) rounds(n, rounds int, offset func(r, g int) time.Duration, fn func(c *caller, r int)) {
	x.t.Helper()
	if err := runRounds(x.s, n, rounds, offset, fn); err != nil {
		x.t.Fatal(err)
	}
}

// runRounds starts n goroutines that run fn(c, r) for each round r in
// [0, rounds). Before each round they meet at a barrier, spinning so that
// goroutines on different processors leave it within nanoseconds of each
// other; then each busy-waits its offset for the round (none if offset
// is nil) and calls the store directly. runRounds returns a *hungError if a call was
// still running the watchdog bound after it started; its goroutine, and
// those waiting for it at the next barrier, are left behind.
func runRounds(s *suite, n, rounds int, offset func(r, g int) time.Duration, fn func(c *caller, r int)) error {
	slots := make([]slot, n)
	base := time.Now() // a monotonic origin for the start instants
	var arrived atomic.Int64
	release := make([]atomic.Int64, rounds) // each round's start, ns after base
	parked := make([]atomic.Int32, rounds)  // goroutines asleep at the barrier
	wake := make([]chan struct{}, rounds)
	for r := range wake {
		wake[r] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &caller{g: g, s: s, slot: &slots[g]}
			defer c.release()
			for r := range rounds {
				c.context() // made now, not between the barrier and the call
				if arrived.Add(1) == int64(n)*int64(r+1) {
					// The last to arrive sets the start a little ahead, so
					// that the others see it before it comes: further ahead
					// if some had to sleep, so that they wake up in time.
					lead := raceLead
					if parked[r].Load() > 0 {
						lead = raceWake
					}
					release[r].Store(int64(time.Since(base) + lead))
					close(wake[r])
				} else {
					// Spin: on their own processors the goroutines leave
					// the barrier within nanoseconds of each other. But a
					// goroutine that spins for long keeps its partner off
					// a busy machine's processors: then sleep instead.
					for t0 := time.Now(); release[r].Load() == 0; {
						if time.Since(t0) > raceSpin {
							parked[r].Add(1)
							if release[r].Load() == 0 {
								<-wake[r]
							}
							break
						}
						runtime.Gosched() // lets goroutines without a processor run
					}
				}
				at := time.Duration(release[r].Load())
				if offset != nil {
					at += offset(r, g)
				}
				for time.Since(base) < at {
					// Busy: a yield here would let the scheduler, not the
					// offset, decide when the call starts.
				}
				fn(c, r)
			}
		}()
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	wd := time.NewTimer(s.watchdog)
	defer wd.Stop()
	for {
		select {
		case <-done:
			return nil
		case <-wd.C:
		}
		now := time.Now().UnixNano()
		next := s.watchdog
		for g := range slots {
			since := slots[g].since.Load()
			if since == 0 {
				continue
			}
			age := time.Duration(now - since)
			if age < s.watchdog {
				next = min(next, s.watchdog-age)
				continue
			}
			h := &hungError{call: *slots[g].call.Load(), after: age.Truncate(time.Millisecond), timeout: s.opTimeout,
				where: fmt.Sprintf(" on goroutine %d of %d calling at once", g, n)}
			var before []string
			for i := range slots {
				if l := slots[i].last.Load(); l != nil && slots[i].since.Load() == 0 {
					before = append(before, l.desc+", "+outcome(l.err))
				}
			}
			if len(before) > 0 {
				h.before = strings.Join(before, "; or Store.")
			}
			return h
		}
		wd.Reset(next)
	}
}

// callSpan measures how long the store takes for fn's call on a
// goroutine of a race (the median of seven), to scale the offsets of a
// sweep. It is never asserted: it only spreads the start offsets over one
// call's duration.
func (x *storeT) callSpan(fn func(c *caller) error) time.Duration {
	x.t.Helper()
	var took [7]time.Duration
	var l errList
	x.race(1, nil, func(c *caller) {
		for i := range took {
			if err := fn(c); err != nil {
				l.add("measure", "measuring a call before the race: %v", err)
				l.brokenCall(err)
				return
			}
			took[i] = c.took
		}
	})
	x.report(&l)
	s := took[:]
	slices.Sort(s)
	return max(s[len(s)/2], 50*time.Nanosecond)
}

// errList collects failures from many goroutines; the test goroutine
// reports them, each kind once with how often it happened, so that a
// failure seen by every goroutine does not print the same line ten times.
type errList struct {
	mu     sync.Mutex
	kinds  []string
	first  map[string]string
	count  map[string]int
	broken error
}

// add records a failure of the given kind (a short label of what went
// wrong); the first message of each kind is the one shown.
func (l *errList) add(kind, format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.first == nil {
		l.first, l.count = map[string]string{}, map[string]int{}
	}
	if _, ok := l.first[kind]; !ok {
		l.kinds = append(l.kinds, kind)
		l.first[kind] = fmt.Sprintf(format, args...)
	}
	l.count[kind]++
}

// brokenCall records a hung or panicking call; it reports whether err was
// one, so the goroutine can stop.
func (l *errList) brokenCall(err error) bool {
	if !isBroken(err) {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil {
		l.broken = err
	}
	return true
}

func (l *errList) empty() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.kinds) == 0 && l.broken == nil
}

func (x *storeT) report(l *errList) {
	x.t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken != nil {
		x.t.Fatal(l.broken)
	}
	for _, k := range l.kinds {
		msg := l.first[k]
		if n := l.count[k]; n > 1 {
			msg += fmt.Sprintf("\n    (the first of %d such failures: %s)", n, k)
		}
		x.errorf("%s", msg)
	}
}

// stopped reports whether a goroutine saw a hung or panicking call.
func (l *errList) stopped() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken != nil
}

// Effort of the pair races. Their rounds come in chunks of raceChunk. A
// pair race runs until the measured start offsets of its two calls have
// hit each of coverBins equal parts of [-span, span] (span: how long one
// call takes) coverHits times, so that every part of one call has met
// every part of the other several times; at least minRaceRounds rounds,
// and at most maxRaceRounds or raceBudget, whichever comes first. A busy
// machine only makes it take more rounds. The budget bounds the effort of
// a pathological case; nothing about time is asserted.
const (
	raceChunk     = 64
	minRaceRounds = 64
	maxRaceRounds = 16384
	raceBudget    = 600 * time.Millisecond
	coverBins     = 48
	coverHits     = 16
)

// coverage counts the measured start offsets of the rounds of a pair race.
type coverage struct {
	span time.Duration
	hits [coverBins]int
}

func (cv *coverage) bin(rel time.Duration) int {
	if rel < -cv.span || rel >= cv.span {
		return -1
	}
	return int((rel + cv.span) * coverBins / (2 * cv.span))
}

// plan returns the offsets to ask for in the next n rounds: the middles
// of the least-hit parts of the range, counting what is planned.
func (cv *coverage) plan(n int) []time.Duration {
	planned := cv.hits
	out := make([]time.Duration, n)
	for i := range out {
		b := 0
		for j := range planned {
			if planned[j] < planned[b] {
				b = j
			}
		}
		planned[b]++
		out[i] = -cv.span + (2*time.Duration(b)+1)*cv.span/coverBins
	}
	return out
}

func (cv *coverage) add(rel time.Duration) {
	if b := cv.bin(rel); b >= 0 {
		cv.hits[b]++
	}
}

func (cv *coverage) done() bool { return slices.Min(cv.hits[:]) >= coverHits }

// pairRace races two calls per round, chunk by chunk, until coverage is
// done (see the constants above). For each chunk of rounds first to
// first+raceChunk-1, prep(first) sets them up, call(c, i) makes goroutine
// c.g's call of round first+i, and verify(first) checks their outcome;
// either returns false to stop the race.
func (x *storeT) pairRace(span time.Duration, prep func(first int) bool, call func(c *caller, i int), verify func(first int) bool) {
	x.t.Helper()
	cv := &coverage{span: max(span, 50*time.Nanosecond)}
	// bias is how much later than asked goroutine 1's call starts on
	// average (the barrier lets one goroutine go first, and the two paths
	// to the call differ): the offsets asked for are corrected by it.
	var bias time.Duration
	t0 := time.Now()
	for first := 0; first < maxRaceRounds; first += raceChunk {
		if !prep(first) {
			return
		}
		targets := cv.plan(raceChunk)
		asked := make([]time.Duration, raceChunk)
		for i, t := range targets {
			asked[i] = t - bias
		}
		began := make([][2]time.Time, raceChunk)
		x.rounds(2, raceChunk, func(i, g int) time.Duration {
			if g == 0 {
				return max(0, -asked[i])
			}
			return max(0, asked[i])
		}, func(c *caller, i int) {
			c.first = time.Time{}
			call(c, i)
			began[i][c.g] = c.first // the start of its first call this round
		})
		var late []time.Duration
		for i, b := range began {
			if !b[0].IsZero() && !b[1].IsZero() {
				rel := b[1].Sub(b[0])
				cv.add(rel)
				if d := rel - asked[i]; d.Abs() < 4*cv.span {
					late = append(late, d) // not a paused thread
				}
			}
		}
		if len(late) > 0 {
			slices.Sort(late)
			bias += (late[len(late)/2] - bias) / 2
		}
		if !verify(first) {
			return
		}
		if first+raceChunk >= minRaceRounds && (cv.done() || time.Since(t0) > raceBudget) {
			return
		}
	}
}
