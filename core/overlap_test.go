package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Overlapping requests on one session: what each kind of change gets when
// another request saves in between (package documentation, "Concurrency").

// holdAll parks requests after they loaded their session until released,
// so that many of them overlap deterministically.
type holdAll struct {
	loaded  sync.WaitGroup
	release chan struct{}
}

func newHoldAll(n int) *holdAll {
	h := &holdAll{release: make(chan struct{})}
	h.loaded.Add(n)
	return h
}

func (h *holdAll) park() {
	h.loaded.Done()
	<-h.release
}

// contentionMux: /set?k=&v= sets k (a blind write); /incr increments
// "count" with Update and prints the stored value; /count is Get then Set;
// /get?k= prints k; /kill, /login. With hold set, /set, /incr, /count and
// /login park after loading the session.
func contentionMux(t *testing.T, hold *holdAll) http.Handler {
	park := func(s *Session) {
		if hold != nil {
			_, _ = Get[string](s, "unrelated") // load now
			hold.park()
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		park(s)
		if err := s.Set(r.URL.Query().Get("k"), r.URL.Query().Get("v")); err != nil {
			http.Error(w, err.Error(), StatusCode(err))
		}
	})
	mux.HandleFunc("/incr", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		park(s)
		n, err := Update(s, "count", func(n int) (int, error) { return n + 1, nil })
		if err != nil {
			http.Error(w, err.Error(), StatusCode(err))
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		n, _ := Get[int](s, "count")
		park(s)
		must(t, s.Set("count", n+1))
		io.WriteString(w, strconv.Itoa(n+1))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, _ := Get[json.RawMessage](FromContext(r.Context()), r.URL.Query().Get("k"))
		io.WriteString(w, string(v))
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Kill())
	})
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		park(s)
		must(t, s.Regenerate())
	})
	return mux
}

// splitMux sends the requests that held selects to a contentionMux parked
// at hold, and the others to one that is not.
func splitMux(t *testing.T, hold *holdAll, held func(*http.Request) bool) http.Handler {
	parked, free := contentionMux(t, hold), contentionMux(t, nil)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if held(r) {
			parked.ServeHTTP(w, r)
		} else {
			free.ServeHTTP(w, r)
		}
	})
}

// parallel runs n requests of c at once and returns their statuses and
// bodies, in the order of i.
func parallel(c *client, n int, path func(i int) string) (codes []int, bodies []string) {
	codes, bodies = make([]int, n), make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := c.do(path(i))
			codes[i], bodies[i] = resp.StatusCode, body
		}()
	}
	wg.Wait()
	return codes, bodies
}

func TestStaleReadThenWriteIsNotRolledBack(t *testing.T) {
	hold := newHoldAll(1)
	e := newEnv(t, splitMux(t, hold, func(r *http.Request) bool { return r.URL.Query().Has("slow") }))
	c := e.client()
	if got := c.body("/count"); got != "1" {
		t.Fatalf("first /count = %q", got)
	}
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.do("/count?slow")
		done <- resp
	}()
	hold.loaded.Wait() // the slow request read count = 1
	for want := 2; want <= 6; want++ {
		if got := c.body("/count"); got != strconv.Itoa(want) {
			t.Fatalf("fast /count = %q, want %d", got, want)
		}
	}
	close(hold.release) // the slow request now sets count = 2 from its stale read
	if resp := <-done; resp.StatusCode != http.StatusConflict {
		t.Fatalf("the stale read-then-write got %d, want 409 Conflict", resp.StatusCode)
	}
	if got := c.body("/get?k=count"); got != "6" {
		t.Fatalf("count = %s after the stale write, want 6: rolled back", got)
	}
	if got := c.body("/count"); got != "7" {
		t.Fatalf("next /count = %q, want 7", got)
	}
}

func TestUpdateIncrementsAreNeverLost(t *testing.T) {
	const n = 50
	e := newEnv(t, contentionMux(t, nil))
	c := e.client()
	c.body("/incr")
	codes, bodies := parallel(c, n, func(int) string { return "/incr" })
	var got []int
	for i := range n {
		if codes[i] != 200 {
			t.Fatalf("increment %d: status %d (%s)", i, codes[i], bodies[i])
		}
		v, _ := strconv.Atoi(bodies[i])
		got = append(got, v)
	}
	slices.Sort(got)
	for i, v := range got {
		if v != i+2 {
			t.Fatalf("responses showed %v: each increment must show the distinct value it stored, 2..%d", got, n+1)
		}
	}
	if final := c.body("/get?k=count"); final != strconv.Itoa(n+1) {
		t.Fatalf("count = %s after %d increments, want %d", final, n+1, n+1)
	}
}

// sibling is a second manager over e's store and clock, with a server of
// its own: another process sharing the same database.
func (e *env) sibling(t *testing.T, handler http.Handler, opts ...Option) *env {
	t.Helper()
	opts = append([]Option{WithClock(e.clock.Now), WithCleanupInterval(0), WithLogger(e.m.log())}, opts...)
	m, err := New(e.store, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	sib := &env{t: t, store: e.store, clock: e.clock, m: m, srv: httptest.NewServer(m.Middleware(handler))}
	t.Cleanup(sib.srv.Close)
	return sib
}

// on returns a client of e sharing c's cookie jar: the same browser,
// talking to another server of the same site (cookies ignore the port).
func (c *client) on(e *env) *client { return &client{e: e, http: c.http, header: c.header} }

// TestOverlappingWritersLoseNothing runs 50 writers of different keys at
// once on one session, through one manager, and through two managers over
// one store (two processes sharing a database).
func TestOverlappingWritersLoseNothing(t *testing.T) {
	const n = 50
	for _, managers := range []int{1, 2} {
		t.Run(fmt.Sprintf("managers=%d", managers), func(t *testing.T) {
			e := newEnv(t, contentionMux(t, nil))
			c := e.client()
			clients := []*client{c}
			if managers == 2 {
				clients = append(clients, c.on(e.sibling(t, contentionMux(t, nil))))
			}
			c.body("/set?k=base&v=0")
			codes := make([]int, n)
			bodies := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, body := clients[i%managers].do(fmt.Sprintf("/set?k=w%d&v=%d", i, i))
					codes[i], bodies[i] = resp.StatusCode, body
				}()
			}
			wg.Wait()
			errs := 0
			for i := range n {
				if codes[i] != 200 {
					errs++
					t.Errorf("writer %d: status %d (%s)", i, codes[i], bodies[i])
				}
			}
			lost := 0
			for i := range n {
				if got := c.body(fmt.Sprintf("/get?k=w%d", i)); got != strconv.Quote(strconv.Itoa(i)) {
					lost++
					t.Errorf("key w%d = %s, want %q", i, got, strconv.Itoa(i))
				}
			}
			if c.body("/get?k=base") != `"0"` {
				t.Error("a key nobody wrote was lost")
			}
			if errs+lost > 0 {
				t.Errorf("%d of %d writers failed, %d keys lost", errs, n, lost)
			}
		})
	}
}

// TestUpdateIncrementsAcrossManagers: 50 atomic increments split over two
// managers sharing a store come out exact.
func TestUpdateIncrementsAcrossManagers(t *testing.T) {
	const n = 50
	e := newEnv(t, contentionMux(t, nil))
	c := e.client()
	clients := []*client{c, c.on(e.sibling(t, contentionMux(t, nil)))}
	c.body("/incr")
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := clients[i%2].do("/incr")
			codes[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, code := range codes {
		if code != 200 {
			t.Errorf("increment %d: status %d", i, code)
		}
	}
	if got := c.body("/get?k=count"); got != strconv.Itoa(n+1) {
		t.Fatalf("count = %s after %d increments over two managers, want %d", got, n+1, n+1)
	}
}

// TestInProcessSavesAreGrouped: overlapping saves of one session in one
// process never fight through the store: those that arrive while one is
// written wait, and are then written together in one Update, with no
// reload.
func TestInProcessSavesAreGrouped(t *testing.T) {
	const n = 10
	hold := newHoldAll(n)
	e := newEnv(t, contentionMux(t, hold))
	c := e.client()
	c.on(e.sibling(t, contentionMux(t, nil))).body("/set?k=base&v=0") // one request not held
	key := storeKey(c.cookie(DefaultCookieName))
	e.store.resetCounts()
	var first sync.Once
	e.store.before = func(op, k string) {
		if op == "Update" {
			// Hold the first save until every other one waits for its turn.
			first.Do(func() {
				for e.m.slots.refs(key) < n {
					runtime.Gosched()
				}
			})
		}
	}
	done := make(chan struct{})
	var codes []int
	go func() {
		codes, _ = parallel(c, n, func(i int) string { return fmt.Sprintf("/set?k=w%d&v=%d", i, i) })
		close(done)
	}()
	hold.loaded.Wait()
	close(hold.release)
	<-done
	for i, code := range codes {
		if code != 200 {
			t.Fatalf("writer %d: status %d", i, code)
		}
	}
	// The first save, then the other n-1, which queued behind it, in one.
	if u, l := e.store.count("Update"), e.store.count("Load"); u != 2 || l != n {
		t.Fatalf("%d Updates and %d Loads for %d overlapping writers, want 2 (the first save, then the rest together) and %d (no reload)", u, l, n, n)
	}
	for i := range n {
		if got := c.body(fmt.Sprintf("/get?k=w%d", i)); got != strconv.Quote(strconv.Itoa(i)) {
			t.Errorf("key w%d = %s", i, got)
		}
	}
}

// refs is how many saves hold or wait for key's turn.
func (t *saveSlots) refs(key string) int {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sl := sh.m[key]; sl != nil {
		return sl.refs
	}
	return 0
}

func TestKillDuringInFlightWrites(t *testing.T) {
	const n = 20
	hold := newHoldAll(n)
	e := newEnv(t, splitMux(t, hold, func(r *http.Request) bool { return r.URL.Path == "/set" && r.URL.Query().Get("k") != "base" }))
	c := e.client()
	c.body("/set?k=base&v=0")
	old := c.cookie(DefaultCookieName)
	done := make(chan []int)
	go func() {
		codes, _ := parallel(c, n, func(i int) string { return fmt.Sprintf("/set?k=w%d&v=%d", i, i) })
		done <- codes
	}()
	hold.loaded.Wait()
	c.body("/kill")
	close(hold.release)
	for i, code := range <-done {
		if code != http.StatusConflict {
			t.Errorf("writer %d into the killed session: status %d, want 409: it must not be told its change was saved", i, code)
		}
	}
	if n := e.store.len(); n != 0 {
		t.Fatalf("%d records after the kill: the killed session came back", n)
	}
	resp, _ := e.rawGet("/get?k=base", DefaultCookieName+"="+old)
	if resp.StatusCode != 200 || e.store.len() != 0 {
		t.Fatal("the killed id was usable again")
	}
}

func TestRegenerateCarriesOverAnOverlappingSave(t *testing.T) {
	hold := newHoldAll(1)
	e := newEnv(t, splitMux(t, hold, func(r *http.Request) bool { return r.URL.Path == "/login" }))
	c := e.client()
	c.body("/set?k=base&v=0")
	old := c.cookie(DefaultCookieName)
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.do("/login")
		done <- resp
	}()
	hold.loaded.Wait()
	c.body("/set?k=cart&v=book") // saved into the old record after login loaded it
	close(hold.release)
	if resp := <-done; resp.StatusCode != 200 {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	if c.cookie(DefaultCookieName) == old {
		t.Fatal("login did not change the id")
	}
	if got := c.body("/get?k=cart"); got != `"book"` {
		t.Fatalf("cart = %s in the regenerated session, want \"book\": a change saved during the login was lost", got)
	}
	if _, ok := e.store.get(storeKey(old)); ok {
		t.Fatal("the old record is still there")
	}
}

func TestSaveAfterRegenerateFails(t *testing.T) {
	hold := newHoldAll(1)
	e := newEnv(t, splitMux(t, hold, func(r *http.Request) bool { return r.URL.Query().Has("held") }))
	c := e.client()
	c.body("/set?k=base&v=0")
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.do("/set?k=cart&v=book&held")
		done <- resp
	}()
	hold.loaded.Wait()
	c.body("/login")
	close(hold.release)
	if resp := <-done; resp.StatusCode != http.StatusConflict {
		t.Fatalf("a save into the replaced id got %d, want 409", resp.StatusCode)
	}
	if got := c.body("/get?k=base"); got != `"0"` {
		t.Fatalf("base = %s after login", got)
	}
	if e.store.len() != 1 {
		t.Fatalf("%d records, want only the regenerated one", e.store.len())
	}
}

// hangingStore blocks every call of the chosen op until the call's context
// ends, then lets it through, as a database that stalls and comes back.
type hangingStore struct {
	*mapStore
	op      string
	entered chan struct{}
}

func (s *hangingStore) hang(ctx context.Context, op string) {
	if op == s.op {
		s.entered <- struct{}{}
		<-ctx.Done()
	}
}

func (s *hangingStore) Load(ctx context.Context, key string) (Record, error) {
	s.hang(ctx, "Load")
	return s.mapStore.Load(ctx, key)
}

func (s *hangingStore) Update(ctx context.Context, key string, rec Record) error {
	s.hang(ctx, "Update")
	return s.mapStore.Update(ctx, key, rec)
}

func TestStoreCallsHaveADeadline(t *testing.T) {
	for _, op := range []string{"Load", "Update"} {
		t.Run(op, func(t *testing.T) {
			e := newEnv(t, contentionMux(t, nil))
			c := e.client()
			c.body("/set?k=v&v=before")
			st := &hangingStore{mapStore: e.store, entered: make(chan struct{}, 1)}
			m, err := New(st, WithClock(e.clock.Now), WithCleanupInterval(0), WithStoreTimeout(20*time.Millisecond), WithLogger(e.m.log()))
			must(t, err)
			srv := httptest.NewServer(m.Middleware(contentionMux(t, nil)))
			defer srv.Close()
			stalled := c.on(&env{t: t, store: e.store, m: m, srv: srv})
			st.op = op
			resp, _ := stalled.do("/set?k=v&v=after")
			<-st.entered
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("a request whose %s hung past the deadline got %d, want 503", op, resp.StatusCode)
			}
			st.op = ""
			// The stalled call returned (its context ended) and must not have
			// written anything, now or later.
			if got := c.body("/get?k=v"); got != `"before"` {
				t.Fatalf("v = %s: the timed-out save landed", got)
			}
		})
	}
}

func TestUpdateHelper(t *testing.T) {
	mux := http.NewServeMux()
	var late error
	mux.HandleFunc("/new", func(w http.ResponseWriter, r *http.Request) {
		n, err := Update(FromContext(r.Context()), "n", func(n int) (int, error) { return n + 5, nil })
		must(t, err)
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("/fail", func(w http.ResponseWriter, r *http.Request) {
		_, err := Update(FromContext(r.Context()), "n", func(n int) (int, error) { return 0, errors.New("no") })
		if err == nil || err.Error() != "no" {
			t.Errorf("Update returned %v, want fn's error", err)
		}
	})
	mux.HandleFunc("/wrongtype", func(w http.ResponseWriter, r *http.Request) {
		_, err := Update(FromContext(r.Context()), "n", func(s []string) ([]string, error) { return s, nil })
		if err == nil {
			t.Error("Update decoded a number into a []string")
		}
	})
	mux.HandleFunc("/late", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "committed")
		_, late = Update(FromContext(r.Context()), "n", func(n int) (int, error) { return n + 1, nil })
	})
	e := newEnv(t, mux)
	c := e.client()
	if got := c.body("/new"); got != "5" {
		t.Fatalf("Update on a new session returned %s", got)
	}
	if c.cookie(DefaultCookieName) == "" || e.store.len() != 1 {
		t.Fatal("Update on a new session did not store it with a cookie")
	}
	c.body("/fail")
	c.body("/wrongtype")
	c.do("/late")
	if !errors.Is(late, ErrCommitted) {
		t.Fatalf("Update after commit returned %v, want ErrCommitted", late)
	}
	if got := c.body("/new"); got != "10" {
		t.Fatalf("after a failed Update the value was %s, want 10", got)
	}
}

func TestUpdateFailsOnAStaleReadOfAnotherKey(t *testing.T) {
	hold := newHoldAll(1)
	mux := http.NewServeMux()
	var got error
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		price, _ := Get[int](s, "price")
		hold.park()
		_, got = Update(s, "total", func(t int) (int, error) { return t + price, nil })
		if got != nil {
			http.Error(w, got.Error(), StatusCode(got))
		}
	})
	fast := contentionMux(t, nil)
	mux.Handle("/", fast)
	e := newEnv(t, mux)
	c := e.client()
	c.body("/set?k=price&v=1")
	done := make(chan *http.Response)
	go func() {
		resp, _ := c.do("/slow")
		done <- resp
	}()
	hold.loaded.Wait()
	c.body("/set?k=price&v=2")
	close(hold.release)
	if resp := <-done; resp.StatusCode != http.StatusConflict || !errors.Is(got, ErrConflict) {
		t.Fatalf("Update using a stale read: status %d, error %v; want 409 and ErrConflict", resp.StatusCode, got)
	}
	if v := c.body("/get?k=total"); v != "" {
		t.Fatalf("total = %s, want unset", v)
	}
}

// TestGroupedSavesFailAlone: saves written together still each get their
// own outcome. Of two read-then-writes of one value that overlap, one
// lands and one fails with 409, whether they are written in one batch or
// not; a blind write beside them lands.
func TestGroupedSavesFailAlone(t *testing.T) {
	for round := range 20 {
		hold := newHoldAll(3)
		e := newEnv(t, splitMux(t, hold, func(r *http.Request) bool { return r.URL.Query().Has("held") }))
		c := e.client()
		c.body("/count") // count = 1
		done := make(chan []int)
		go func() {
			codes, _ := parallel(c, 3, func(i int) string {
				if i == 0 {
					return "/set?held&k=blind&v=x"
				}
				return "/count?held"
			})
			done <- codes
		}()
		hold.loaded.Wait()
		close(hold.release)
		codes := <-done
		if codes[0] != 200 {
			t.Fatalf("round %d: the blind write got %d", round, codes[0])
		}
		if !(codes[1] == 200 && codes[2] == 409 || codes[1] == 409 && codes[2] == 200) {
			t.Fatalf("round %d: two overlapping read-then-writes got %d and %d, want one 200 and one 409", round, codes[1], codes[2])
		}
		if got := c.body("/get?k=count"); got != "2" {
			t.Fatalf("round %d: count = %s, want 2", round, got)
		}
		if got := c.body("/get?k=blind"); got != `"x"` {
			t.Fatalf("round %d: the blind write was lost: %s", round, got)
		}
	}
}
