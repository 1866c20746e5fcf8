package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// conflictCounter passes every call through to the real store and counts
// the version conflicts it reports, to prove the test below really made
// the two servers' writes overlap.
type conflictCounter struct {
	session.Store
	n atomic.Int64
}

func (c *conflictCounter) Update(ctx context.Context, key string, rec session.Record) error {
	err := c.Store.Update(ctx, key, rec)
	if errors.Is(err, session.ErrConflict) {
		c.n.Add(1)
	}
	return err
}

// appServer is one application server: its own pool, its own Store, its
// own session.Manager, its own HTTP listener.
type appServer struct {
	url   string
	store *conflictCounter
}

// barrier makes the requests of the concurrency round all load the session
// before any of them saves, so that their saves must conflict.
type barrier struct {
	mu      sync.Mutex
	waiting int
	release chan struct{}
}

func (b *barrier) arm(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.waiting, b.release = n, make(chan struct{})
}

func (b *barrier) wait() {
	b.mu.Lock()
	b.waiting--
	ch := b.release
	if b.waiting == 0 {
		close(ch)
	}
	b.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(20 * time.Second): // a request got lost: let the rest finish and the checks fail
	}
}

func startServer(t *testing.T, dsn, schema string, clk interface{ Now() time.Time }, bar *barrier) *appServer {
	t.Helper()
	st := &conflictCounter{Store: newStore(t, openDB(t, dsn), WithSchema(schema))}
	m, err := session.New(st, session.WithClock(clk.Now), session.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, err := session.Get[string](session.FromContext(r.Context()), r.FormValue("k"))
		if err != nil && !errors.Is(err, session.ErrNoValue) {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		if r.FormValue("sync") != "" {
			if _, err := session.Get[string](s, "user"); err != nil && !errors.Is(err, session.ErrNoValue) { // load first
				http.Error(w, err.Error(), 500)
				return
			}
			bar.wait()
		}
		if err := s.Set(r.FormValue("k"), r.FormValue("v")); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Kill(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, "killed")
	})
	srv := httptest.NewServer(m.Middleware(mux))
	t.Cleanup(srv.Close)
	return &appServer{url: srv.URL, store: st}
}

// request sends one request with the given session cookie (nil: none) and
// returns the body and the session cookie the response set, if any.
func request(t *testing.T, base, path string, params url.Values, cookie *http.Cookie) (string, *http.Cookie) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path+"?"+params.Encode(), nil)
	if err != nil {
		t.Error(err)
		return "", nil
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Error(err)
		return "", nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Errorf("%s%s: %s: %s", base, path, resp.Status, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == session.DefaultCookieName {
			return string(body), c
		}
	}
	return string(body), nil
}

// TestTwoServersShareSessions runs two application servers, each with its
// own connection pool and Store over one table, as a load balancer would
// see them: a session begun on one is read, changed and killed through the
// other, and concurrent changes of different keys through both survive.
func TestTwoServersShareSessions(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	clk := conformance.NewFakeClock()
	bar := &barrier{}
	a := startServer(t, dsn, schema, clk, bar)
	b := startServer(t, dsn, schema, clk, bar)
	kv := func(pairs ...string) url.Values {
		v := url.Values{}
		for i := 0; i+1 < len(pairs); i += 2 {
			v.Set(pairs[i], pairs[i+1])
		}
		return v
	}

	_, cookie := request(t, a.url, "/set", kv("k", "user", "v", "alice"), nil)
	if cookie == nil {
		t.Fatal("server A set no session cookie")
	}
	if got, _ := request(t, b.url, "/get", kv("k", "user"), cookie); got != "alice" {
		t.Fatalf("server B read %q from A's session, want alice", got)
	}
	request(t, b.url, "/set", kv("k", "user", "v", "bob"), cookie)
	if got, _ := request(t, a.url, "/get", kv("k", "user"), cookie); got != "bob" {
		t.Fatalf("server A read %q after B's update, want bob", got)
	}

	// Both servers change different keys of the one session at once. The
	// barrier holds every request after its load until all have loaded.
	// Inside each server the saves take turns (core rebases each on the
	// one before, without a conflict), but the first save of whichever
	// server comes second conflicts with the other server's, and must
	// merge its key into the record saved meanwhile.
	const perServer = 8
	bar.arm(2 * perServer)
	var wg sync.WaitGroup
	for i := range perServer {
		for _, srv := range []*appServer{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				key := fmt.Sprintf("%s%d", map[*appServer]string{a: "a", b: "b"}[srv], i)
				request(t, srv.url, "/set", kv("k", key, "v", key, "sync", "1"), cookie)
			}()
		}
	}
	wg.Wait()
	if a.store.n.Load()+b.store.n.Load() == 0 {
		t.Errorf("no conflict on A or B: the two servers' saves did not overlap")
	}
	t.Logf("conflicts resolved: %d on A, %d on B", a.store.n.Load(), b.store.n.Load())
	for i := range perServer {
		for _, prefix := range []string{"a", "b"} {
			key := fmt.Sprint(prefix, i)
			for _, srv := range []*appServer{a, b} {
				if got, _ := request(t, srv.url, "/get", kv("k", key), cookie); got != key {
					t.Errorf("%s read %q = %q after the concurrent round, want %q", srv.url, key, got, key)
				}
			}
		}
	}
	if got, _ := request(t, a.url, "/get", kv("k", "user"), cookie); got != "bob" {
		t.Errorf("user = %q after the concurrent round, want bob (nobody changed it)", got)
	}

	// Killed on B: gone for A too, and A does not bring it back.
	request(t, b.url, "/kill", nil, cookie)
	if got, fresh := request(t, a.url, "/get", kv("k", "user"), cookie); got != "" || (fresh != nil && fresh.Value == cookie.Value) {
		t.Fatalf("server A still serves the session B killed: user=%q", got)
	}
	var rows int
	if err := admin(t).Get(&rows, `SELECT count(*) FROM `+a.store.Store.(*Store).Table()); err != nil || rows != 0 {
		t.Fatalf("%d rows left after the kill (%v), want 0", rows, err)
	}
}
