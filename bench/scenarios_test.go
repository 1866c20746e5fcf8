package bench

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// env runs a scenario either as a benchmark (timed, b.N iterations) or as
// a test (a few iterations, same checks), so that `make test` exercises
// every scenario's code and checks on every backend.
type env struct {
	testing.TB
	// loop is the sequential iteration condition: b.Loop, or a countdown.
	loop func() bool
	// par runs body on workers goroutines, giving each its index and its
	// iteration condition: b.RunParallel (one goroutine per P), or
	// goroutines counting down.
	par     func(body func(worker int, next func() bool))
	workers int
	// n is the number of iterations run (all goroutines together).
	n      func() int
	report func(v float64, unit string)
}

func benchEnv(b *testing.B) *env {
	b.ReportAllocs()
	return &env{
		TB:   b,
		loop: b.Loop,
		par: func(body func(int, func() bool)) {
			var next atomic.Int32
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) { body(int(next.Add(1)-1), pb.Next) })
			b.StopTimer()
		},
		// RunParallel starts GOMAXPROCS goroutines (b.SetParallelism is
		// never called here).
		workers: runtime.GOMAXPROCS(0),
		n:       func() int { return b.N },
		report:  b.ReportMetric,
	}
}

// testEnv runs iters iterations (on each goroutine, for the parallel
// scenarios) and logs the metrics.
func testEnv(t *testing.T, iters int) *env {
	var total atomic.Int64
	left := iters
	return &env{
		TB: t,
		loop: func() bool {
			if left == 0 {
				return false
			}
			left--
			total.Add(1)
			return true
		},
		par: func(body func(int, func() bool)) {
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					left := iters
					body(i, func() bool {
						if left == 0 {
							return false
						}
						left--
						total.Add(1)
						return true
					})
				}()
			}
			wg.Wait()
		},
		workers: 2,
		n:       func() int { return int(total.Load()) },
		report:  func(v float64, unit string) { t.Logf("%g %s", v, unit) },
	}
}

// mark is a point in an instance's counts.
type mark struct {
	calls callCount
	trips int64
}

func (in *instance) mark() mark {
	m := mark{calls: in.calls.snapshot()}
	if in.trips != nil {
		m.trips = in.trips.load()
	}
	return m
}

// record reports the store calls and round trips per request between two
// marks, and returns the call counts.
func (e *env) record(in *instance, start, end mark) callCount {
	d := end.calls.sub(start.calls)
	n := float64(e.n())
	if n == 0 {
		e.Fatal("no iterations ran")
	}
	if _, none := in.lib.(noLib); !none {
		e.report(float64(d.reads+d.writes)/n, "storecalls/op")
		e.report(float64(d.reads)/n, "storereads/op")
		e.report(float64(d.writes)/n, "storewrites/op")
	}
	if in.trips != nil {
		e.report(float64(end.trips-start.trips)/n, "roundtrips/op")
	}
	return d
}

// newSession creates a session holding count=1 through the library's own
// New handler and returns its cookie (name=value).
func (e *env) newSession(in *instance) string {
	e.Helper()
	if _, none := in.lib.(noLib); none {
		// No library: a cookie of the usual shape, which nothing reads.
		return "session_id=" + strings.Repeat("A", 43)
	}
	w := newRespWriter()
	in.lib.wrap(newHandler(in.lib)).ServeHTTP(w, newRequest(""))
	if err := w.check("1"); err != nil {
		e.Fatalf("creating a session: %v", err)
	}
	c, err := w.sessionCookie()
	if err != nil {
		e.Fatalf("creating a session: %v", err)
	}
	return c
}

// readBack reads count from the session of cookie through the library,
// outside the timed loop.
func (e *env) readBack(in *instance, cookie string) string {
	e.Helper()
	w := newRespWriter()
	in.lib.wrap(readHandler(in.lib)).ServeHTTP(w, newRequest(cookie))
	if w.status != http.StatusOK {
		e.Fatalf("reading back %s: %d %q", cookie, w.status, w.body)
	}
	return string(w.body)
}

// noWritesBeyondTouch fails unless a read-only run wrote at most what the
// touch interval allows: nothing, unless the run outlasted the interval
// since the session was last written (a long -benchtime on a real clock).
func (e *env) noWritesBeyondTouch(d callCount, since time.Time) {
	e.Helper()
	allowed := int64(time.Since(since) / session.DefaultTouchInterval)
	if d.writes > allowed {
		e.Fatalf("read-only requests wrote to the store: %v, at most %d allowed within the touch interval", d, allowed)
	}
}

// newSessions creates n sessions as newSession does and returns their
// cookies.
func (e *env) newSessions(in *instance, n int) []string {
	e.Helper()
	cookies := make([]string, n)
	for i := range cookies {
		cookies[i] = e.newSession(in)
	}
	return cookies
}

// serveEach serves h the request carrying cookie in the sequential loop,
// fails unless every response is a 200 with body want, and returns the
// store calls recorded over the loop.
func (e *env) serveEach(in *instance, h http.Handler, cookie, want string) callCount {
	r, w := newRequest(cookie), newRespWriter()
	start := in.mark()
	for e.loop() {
		w.reset()
		h.ServeHTTP(w, r)
		if err := w.check(want); err != nil {
			e.Fatal(err)
		}
	}
	return e.record(in, start, in.mark())
}

// noStoreCallsFromOurs fails if our middleware made a store call for
// requests whose handler never used the session. The other libraries load
// eagerly, which the figures show.
func (e *env) noStoreCallsFromOurs(in *instance, d callCount) {
	e.Helper()
	if _, isOurs := in.lib.(ours); isOurs && d.reads+d.writes != 0 {
		e.Fatalf("requests that never used their session made %v, want no store call", d)
	}
}

type scenario struct {
	name string
	run  func(e *env, in *instance)
}

// scenarios, in the order of the report. Untouched and UntouchedHTTP also
// run for the "none" backend, the others need a session library.
var scenarios = []scenario{
	{"ReadOnly", runReadOnly},
	{"Counter", runCounter},
	{"New", runNew},
	{"ReadOnlyParallel", runReadOnlyParallel},
	{"CounterParallel", runCounterParallel},
	{"Untouched", runUntouched},
	{"UntouchedHTTP", runUntouchedHTTP},
}

// applies says whether scenario sc runs for backend be in the benchmarks.
// UntouchedHTTP, a network round trip per request (~50 µs), runs only for
// the baseline and the two in-memory libraries: it answers whether the
// middleware is within 10% of no middleware in a real server, and is the
// same question for every store.
func (sc scenario) applies(be backend) bool {
	switch sc.name {
	case "Untouched":
		return true
	case "UntouchedHTTP":
		return be.name == "none" || be.name == "ours-memory" || be.name == "scs-memstore"
	}
	return be.name != "none"
}

// ReadOnly: an existing session is loaded and one value read.
func runReadOnly(e *env, in *instance) {
	cookie := e.newSession(in)
	written := time.Now()
	h := in.lib.wrap(readHandler(in.lib))
	d := e.serveEach(in, h, cookie, "1")
	if d.reads != int64(e.n()) {
		e.Fatalf("%d read-only requests made %v: each must load its session once", e.n(), d)
	}
	e.noWritesBeyondTouch(d, written)
}

// Counter: web.py's counter, count incremented on an existing session.
func runCounter(e *env, in *instance) {
	cookie := e.newSession(in)
	h := in.lib.wrap(counterHandler(in.lib))
	r, w := newRequest(cookie), newRespWriter()
	n := 0
	start := in.mark()
	for e.loop() {
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK {
			e.Fatalf("counter request: %d %q", w.status, w.body)
		}
		w.follow(r)
		n++
	}
	cookie = r.Header.Get("Cookie")
	d := e.record(in, start, in.mark())
	want := strconv.Itoa(1 + n)
	if string(w.body) != want {
		e.Fatalf("last response %q after %d increments of 1, want %s", w.body, n, want)
	}
	if got := e.readBack(in, cookie); got != want {
		e.Fatalf("count %s read back after %d increments of 1, want %s", got, n, want)
	}
	if d.writes < int64(n) {
		e.Fatalf("%d increments made %v: each must be written", n, d)
	}
}

// New: a request without a cookie creates a session with one value.
func runNew(e *env, in *instance) {
	h := in.lib.wrap(newHandler(in.lib))
	r, w := newRequest(""), newRespWriter()
	n := 0
	start := in.mark()
	for e.loop() {
		w.reset()
		h.ServeHTTP(w, r)
		if w.status != http.StatusOK || len(w.h["Set-Cookie"]) == 0 {
			e.Fatalf("new-session request: %d %q, Set-Cookie %q", w.status, w.body, w.h["Set-Cookie"])
		}
		n++
	}
	d := e.record(in, start, in.mark())
	if d.writes != int64(n) {
		e.Fatalf("%d new sessions made %v: each must be stored once", n, d)
	}
	cookie, err := w.sessionCookie()
	if err != nil {
		e.Fatal(err)
	}
	if got := e.readBack(in, cookie); got != "1" {
		e.Fatalf("the last new session reads back %q, want 1", got)
	}
}

// ReadOnlyParallel: ReadOnly on every P at once, one session per goroutine.
func runReadOnlyParallel(e *env, in *instance) {
	cookies := e.newSessions(in, e.workers)
	written := time.Now()
	h := in.lib.wrap(readHandler(in.lib))
	start := in.mark()
	e.par(func(i int, next func() bool) {
		if i >= len(cookies) {
			e.Errorf("goroutine %d of %d: more goroutines than sessions", i, len(cookies))
			return
		}
		r, w := newRequest(cookies[i]), newRespWriter()
		for next() {
			w.reset()
			h.ServeHTTP(w, r)
			if err := w.check("1"); err != nil {
				e.Error(err)
				return
			}
		}
	})
	d := e.record(in, start, in.mark())
	e.noWritesBeyondTouch(d, written)
}

// CounterParallel: Counter on every P at once, one session per goroutine.
func runCounterParallel(e *env, in *instance) {
	cookies := e.newSessions(in, e.workers)
	incs := make([]int, len(cookies))
	h := in.lib.wrap(counterHandler(in.lib))
	start := in.mark()
	e.par(func(i int, next func() bool) {
		if i >= len(cookies) {
			e.Errorf("goroutine %d of %d: more goroutines than sessions", i, len(cookies))
			return
		}
		r, w := newRequest(cookies[i]), newRespWriter()
		n := 0
		for next() {
			w.reset()
			h.ServeHTTP(w, r)
			if w.status != http.StatusOK {
				e.Errorf("counter request: %d %q", w.status, w.body)
				return
			}
			w.follow(r)
			n++
		}
		incs[i], cookies[i] = n, r.Header.Get("Cookie")
	})
	d := e.record(in, start, in.mark())
	sum := 0
	for i, c := range cookies {
		sum += incs[i]
		if got, want := e.readBack(in, c), strconv.Itoa(1+incs[i]); got != want {
			e.Errorf("session %d: count %s after %d increments of 1, want %s", i, got, incs[i], want)
		}
	}
	if sum != e.n() || d.writes < int64(sum) {
		e.Fatalf("%d increments counted by the goroutines, %d iterations run, store %v", sum, e.n(), d)
	}
}

// Untouched: a request through the middleware whose handler never looks
// at the session. It carries the cookie of an existing session.
func runUntouched(e *env, in *instance) {
	cookie := e.newSession(in)
	h := in.lib.wrap(untouchedHandler)
	e.noStoreCallsFromOurs(in, e.serveEach(in, h, cookie, "ok"))
}

// UntouchedHTTP: Untouched through a real HTTP server on loopback, with a
// keep-alive client, as an application sees a request.
func runUntouchedHTTP(e *env, in *instance) {
	cookie := e.newSession(in)
	srv := httptest.NewServer(in.lib.wrap(untouchedHandler))
	defer srv.Close()
	client := srv.Client()
	r, err := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
	if err != nil {
		e.Fatal(err)
	}
	r.Header.Set("Cookie", cookie)
	var body bytes.Buffer
	start := in.mark()
	for e.loop() {
		resp, err := client.Do(r)
		if err != nil {
			e.Fatal(err)
		}
		body.Reset()
		_, err = body.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK || body.String() != "ok" {
			e.Fatalf("untouched request: %v %d %q", err, resp.StatusCode, body.Bytes())
		}
	}
	e.noStoreCallsFromOurs(in, e.record(in, start, in.mark()))
}
