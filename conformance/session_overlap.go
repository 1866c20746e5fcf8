package conformance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// The "Session/Overlap/..." subtests below hold core's promise for
// overlapping requests of one session (core's package documentation,
// "Concurrency") over the store under test: nothing lost, nothing rolled
// back, no killed session brought back, and no save landing after it was
// reported failed. They depend only on the Store contract (versions
// compared at once, Delete final, context honoured), so every store must
// pass them.

// overlapWriters is how many requests overlap in the many-writer subtests.
const overlapWriters = 50

// barrier holds n requests, each after it loaded its session, until all n
// have: their saves then all start from the same version and overlap as
// much as requests can. With then set, they go on only once it is closed
// too, so that the test can act while all n are held.
type barrier struct {
	n       int
	then    chan struct{}
	mu      sync.Mutex
	arrived int
	all     chan struct{}
}

func newBarrier(n int) *barrier { return &barrier{n: n, all: make(chan struct{})} }

// arrivedAll waits until all n requests are held.
func (b *barrier) arrivedAll(limit time.Duration) error {
	select {
	case <-b.all:
		return nil
	case <-time.After(limit):
		b.mu.Lock()
		defer b.mu.Unlock()
		return fmt.Errorf("only %d of %d overlapping requests loaded their session within %v", b.arrived, b.n, limit)
	}
}

func (b *barrier) wait(limit time.Duration) error {
	b.mu.Lock()
	b.arrived++
	if b.arrived == b.n {
		close(b.all)
	}
	b.mu.Unlock()
	if err := b.arrivedAll(limit); err != nil {
		return err
	}
	if b.then != nil {
		select {
		case <-b.then:
		case <-time.After(limit):
			return fmt.Errorf("the overlapping requests were not released within %v", limit)
		}
	}
	return nil
}

// overlapMux is the application of the overlap subtests. /set?k=&v= and
// /incr (count += 1 with session.Update, printing the stored value) are
// blind; with &hold they first load the session and wait at hold. /count
// reads count, waits at hold (with &hold), and sets count+1 from its read.
// /get?k= prints a value as stored, /kill kills.
func (e *sessT) overlapMux(hold *barrier) http.Handler {
	mux := http.NewServeMux()
	wait := func(r *http.Request, s *session.Session) error {
		if !r.URL.Query().Has("hold") {
			return nil
		}
		if _, err := session.Get[string](s, "nobody writes this"); err != nil && !errors.Is(err, session.ErrNoValue) {
			return err
		}
		return hold.wait(e.requestTimeout())
	}
	fail := func(w http.ResponseWriter, err error) {
		http.Error(w, "handler: "+err.Error(), session.StatusCode(err))
	}
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := wait(r, s); err != nil {
			fail(w, err)
			return
		}
		if err := s.Set(r.URL.Query().Get("k"), r.URL.Query().Get("v")); err != nil {
			fail(w, err)
		}
	})
	mux.HandleFunc("/incr", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if err := wait(r, s); err != nil {
			fail(w, err)
			return
		}
		n, err := session.Update(s, "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, err := session.Get[int](s, "count")
		if errors.Is(err, session.ErrNoValue) {
			err = nil
		}
		if err == nil {
			err = wait(r, s)
		}
		if err == nil {
			err = s.Set("count", n+1)
		}
		if err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, strconv.Itoa(n+1))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, err := session.Get[string](session.FromContext(r.Context()), r.URL.Query().Get("k"))
		if errors.Is(err, session.ErrNoValue) {
			v, err = "none", nil
		}
		if err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, v)
	})
	mux.HandleFunc("/peek", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.Get[int](session.FromContext(r.Context()), "count")
		if err != nil {
			fail(w, err)
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Kill(); err != nil {
			fail(w, err)
		}
	})
	return mux
}

// overlapServer serves m with the overlap application; its cookies are
// those of e's clients (cookies ignore the port).
func (e *sessT) overlapServer(m *session.Manager, hold *barrier) string {
	srv := httptest.NewServer(m.Middleware(e.overlapMux(hold)))
	e.t.Cleanup(srv.Close)
	return srv.URL
}

// secondManager is another manager over a second instance of the store
// under test, on the same namespace: another process sharing the storage.
func (e *sessT) secondManager(opts ...session.Option) *session.Manager {
	raw := e.s.h.NewStore(e.t, e.ns)
	if raw == nil {
		e.t.Fatalf("Harness.NewStore(%q) returned a nil store", e.ns)
	}
	m, err := session.New((&spy{inner: raw, s: e.s}).store(), append(e.baseOptions(), opts...)...)
	if err != nil {
		e.t.Fatalf("session.New: %v", err)
	}
	e.t.Cleanup(func() { m.Close() })
	return m
}

// fanOut sends n requests at once from c, request i to urls[i%len(urls)],
// and returns the replies in the order of i.
func (c *client) fanOut(n int, urls []string, path func(i int) string) []reply {
	out := make([]reply, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequest(http.MethodGet, urls[i%len(urls)]+path(i), nil)
			if err == nil {
				req.Header.Set(ipHeader, c.ip)
				out[i], err = c.e.roundTrip(c.hc, req)
			}
			if err != nil {
				out[i] = reply{path: path(i), status: -1, body: err.Error()}
			}
		}()
	}
	wg.Wait()
	return out
}

// on sends GET path to the server at base and requires a 200.
func (c *client) on(base, path string) reply {
	c.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, base+path, nil)
	if err != nil {
		c.e.t.Fatal(err)
	}
	req.Header.Set(ipHeader, c.ip)
	r, err := c.e.roundTrip(c.hc, req)
	return c.e.settle(r, err)
}

// failures describes the replies that are not 200, at most a few.
func failures(rs []reply) (n int, desc string) {
	var lines []string
	for _, r := range rs {
		if r.status != http.StatusOK {
			n++
			if len(lines) < 3 {
				lines = append(lines, fmt.Sprintf("GET %s: %d %s", r.path, r.status, strings.TrimSpace(r.body)))
			}
		}
	}
	if n > len(lines) {
		lines = append(lines, fmt.Sprintf("and %d more", n-len(lines)))
	}
	return n, strings.Join(lines, "; ")
}

// overlapping sets up the many-request subtests: servers over one or two
// store instances whose handlers wait at one barrier, and a client.
func overlapping(f *fixture, instances int) (*sessT, []string, *client) {
	e := sessFixture(f)
	hold := newBarrier(overlapWriters)
	urls := []string{e.overlapServer(e.m, hold)}
	if instances == 2 {
		urls = append(urls, e.overlapServer(e.secondManager(), hold))
	}
	return e, urls, e.client()
}

func checkManyWriters(instances int) func(f *fixture) {
	return func(f *fixture) {
		e, urls, c := overlapping(f, instances)
		c.on(urls[0], "/set?k=base&v=0")
		rs := c.fanOut(overlapWriters, urls, func(i int) string { return fmt.Sprintf("/set?hold&k=w%d&v=%d", i, i) })
		errs, desc := failures(rs)
		var lost []string
		// Read through each instance in turn; a cached instance may lag
		// by Staleness.
		e.s.eventually(func() string {
			lost = lost[:0]
			for i := range overlapWriters {
				if got := c.on(urls[i%len(urls)], fmt.Sprintf("/get?k=w%d", i)).body; got != strconv.Itoa(i) {
					lost = append(lost, fmt.Sprintf("w%d=%s", i, got))
				}
			}
			if len(lost) > 0 {
				return "lost"
			}
			return ""
		})
		if errs > 0 || len(lost) > 0 {
			e.errorf("%d requests overlapping on one session over %d store instance(s), each setting its own key: %d failed (%s), %d keys lost %v; "+
				"a failure here with a store that passes Store/Update/StaleVersion and Store/Concurrent/* usually means conflicts are reported late or as the wrong error",
				overlapWriters, instances, errs, desc, len(lost), lost)
		}
		if got := c.on(urls[0], "/get?k=base").body; got != "0" {
			e.errorf("the key none of the writers touched reads %q after them, want \"0\"", got)
		}
	}
}

func checkAtomicIncrements(instances int) func(f *fixture) {
	return func(f *fixture) {
		e, urls, c := overlapping(f, instances)
		c.on(urls[0], "/incr")
		rs := c.fanOut(overlapWriters, urls, func(int) string { return "/incr?hold" })
		if errs, desc := failures(rs); errs > 0 {
			e.fatalf("%d concurrent session.Update increments over %d store instance(s): %d failed: %s", overlapWriters, instances, errs, desc)
		}
		var shown []int
		for _, r := range rs {
			n, _ := strconv.Atoi(r.body)
			shown = append(shown, n)
		}
		slices.Sort(shown)
		for i, n := range shown {
			if n != i+2 {
				e.errorf("the increments reported the stored values %v; each must report the distinct value it stored, 2 to %d (a value reported twice was lost or stored twice)", shown, overlapWriters+1)
				break
			}
		}
		want := strconv.Itoa(overlapWriters + 1)
		var got string
		e.s.eventually(func() string {
			if got = c.on(urls[0], "/peek").body; got != want {
				return got
			}
			return ""
		})
		if got != want {
			e.errorf("count = %s after %d increments over %d store instance(s), want %s: increments lost", got, overlapWriters+1, instances, want)
		}
	}
}

func checkStaleReadThenWrite(f *fixture) {
	e := sessFixture(f)
	hold := newBarrier(1)
	hold.then = make(chan struct{})
	base := e.overlapServer(e.m, hold)
	c := e.client()
	e.expectBody(c.on(base, "/count"), "1", "first /count")
	slow := make(chan reply, 1)
	go func() { slow <- c.fanOut(1, []string{base}, func(int) string { return "/count?hold" })[0] }()
	if err := hold.arrivedAll(e.requestTimeout()); err != nil {
		close(hold.then)
		e.fatalf("%v", err)
	}
	// The slow request has read count = 1 and will set it to 2.
	for want := 2; want <= 6; want++ {
		e.expectBody(c.on(base, "/count"), strconv.Itoa(want), "a /count overlapping the slow one")
	}
	close(hold.then)
	var r reply
	select {
	case r = <-slow:
	case <-time.After(e.requestTimeout()):
		e.fatalf("the slow /count did not finish within %v", e.requestTimeout())
	}
	e.checkCalls()
	if r.status != http.StatusConflict {
		e.errorf("the slow /count, which read count = 1 before five others saved: status %d body %q, want 409: a value computed from a stale read must not be saved", r.status, r.body)
	}
	e.expectBody(c.on(base, "/peek"), "6", "count after the stale write (a rollback to 2 means the store accepted a stale Version)")
	e.expectBody(c.on(base, "/count"), "7", "the next /count")
}

func checkKillDuringWrites(f *fixture) {
	const writers = 20
	e := sessFixture(f)
	hold := newBarrier(writers)
	hold.then = make(chan struct{})
	defer func() {
		select {
		case <-hold.then:
		default:
			close(hold.then)
		}
	}()
	base := e.overlapServer(e.m, hold)
	c := e.client()
	c.on(base, "/set?k=base&v=0")
	id0 := c.cookie()
	mark := e.spy.mark()
	done := make(chan []reply, 1)
	go func() {
		done <- c.fanOut(writers, []string{base}, func(i int) string { return fmt.Sprintf("/set?hold&k=w%d&v=%d", i, i) })
	}()
	if err := hold.arrivedAll(e.requestTimeout()); err != nil {
		e.fatalf("%v", err)
	}
	// Every writer has loaded the session; kill it before any saves.
	e.clientWith(id0).on(base, "/kill")
	close(hold.then)
	var rs []reply
	select {
	case rs = <-done:
	case <-time.After(e.requestTimeout()):
		e.fatalf("the writers did not finish within %v of the kill", e.requestTimeout())
	}
	e.checkCalls()
	for _, r := range rs {
		if r.status != http.StatusConflict {
			e.errorf("GET %s, in flight when its session was killed: status %d body %q, want 409 (its change could not be saved)", r.path, r.status, r.body)
		}
		for _, ck := range r.cookies {
			if ck.MaxAge >= 0 && cookieID(ck.Value) == cookieID(id0) {
				e.errorf("GET %s re-sent the killed session's cookie", r.path)
			}
		}
	}
	e.expectGone(id0, "the killed session, after 20 writers in flight on it finished")
	if calls := e.spy.since(mark); count(calls, "Create") > 0 {
		e.errorf("a record was created while writers in flight on a killed session finished: %s", describe(calls))
	}
}

// stallingStore stalls the first Update until its context ends, then lets
// it through with that context, as a database that stalls and comes back
// with the abandoned statement still queued.
type stallingStore struct {
	session.Store
	once    sync.Once
	stalled chan error // what the stalled call returned
}

func (s *stallingStore) Update(ctx context.Context, key string, rec session.Record) error {
	stall := false
	s.once.Do(func() { stall = true })
	if !stall {
		return s.Store.Update(ctx, key, rec)
	}
	<-ctx.Done()
	err := s.Store.Update(ctx, key, rec)
	s.stalled <- err
	return err
}

func checkStalledSave(f *fixture) {
	e := sessFixture(f)
	const limit = 50 * time.Millisecond
	c := e.client()
	e.expectBody(c.get("/set?k=v&v=before"), "ok", "setting v")
	st := &stallingStore{Store: e.raw, stalled: make(chan error, 1)}
	m, err := session.New(&spy{inner: st, s: e.s}, append(e.baseOptions(), session.WithStoreTimeout(limit))...)
	if err != nil {
		e.t.Fatalf("session.New: %v", err)
	}
	defer m.Close()
	base := e.overlapServer(m, nil)
	r := c.fanOut(1, []string{base}, func(int) string { return "/set?k=v&v=after" })[0]
	if r.status != http.StatusServiceUnavailable {
		e.errorf("a save whose store call outlived WithStoreTimeout(%v): status %d body %q, want 503", limit, r.status, r.body)
	}
	var stalledErr error
	select {
	case stalledErr = <-st.stalled:
	case <-time.After(e.requestTimeout()):
		e.fatalf("the stalled Update did not return within %v of its context's end", e.requestTimeout())
	}
	if stalledErr == nil {
		e.errorf("Update called with a context already past its deadline succeeded: a save reported failed landed later")
	}
	e.expectBody(c.get("/get?k=v"), "before", "v after the save that timed out")
}
