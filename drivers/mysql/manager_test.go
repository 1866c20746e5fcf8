package mysql

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// app is a small application: /count increments a counter, /get?k= reads
// a value, /set?k=&v= writes one, /kill ends the session, /static does not
// touch it.
func app() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := session.FromContext(r.Context())
		n, _ := session.Get[int](s, "count")
		if err := s.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, n+1)
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		v, err := session.Get[string](session.FromContext(r.Context()), r.URL.Query().Get("k"))
		if err != nil {
			fmt.Fprint(w, "<none>")
			return
		}
		fmt.Fprint(w, v)
	})
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if err := session.FromContext(r.Context()).Set(q.Get("k"), q.Get("v")); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "ok")
	})
	mux.HandleFunc("/kill", func(w http.ResponseWriter, r *http.Request) {
		if err := session.FromContext(r.Context()).Kill(); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, "killed")
	})
	mux.HandleFunc("/static", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "static") })
	return mux
}

// server runs app behind a Manager over store.
func server(t *testing.T, store session.Store, clk interface{ Now() time.Time }, opts ...session.Option) *httptest.Server {
	t.Helper()
	m, err := session.New(store, append([]session.Option{session.WithClock(clk.Now), session.WithCleanupInterval(0)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	srv := httptest.NewServer(m.Middleware(app()))
	t.Cleanup(srv.Close)
	return srv
}

// get requests path with cookie (if any) and returns the body and the
// session cookie the response set, if it set one.
func get(t testing.TB, srv *httptest.Server, path string, cookie *http.Cookie) (string, *http.Cookie) {
	req, err := http.NewRequest(http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != nil {
		req.AddCookie(cookie)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", path, resp.Status, body)
	}
	for _, c := range resp.Cookies() {
		if c.Name == session.DefaultCookieName {
			return string(body), c
		}
	}
	return string(body), nil
}

// TestTwoServersShareSessions puts two managers, on two pools, over one
// table, as two application servers would be.
func TestTwoServersShareSessions(t *testing.T) {
	const table = "ws_two_servers"
	clk := conformance.NewFakeClock()
	clk.Set(t0)
	storeA := newTestStore(t, table, nil)
	storeB := storeOn(t, openPool(t, nil), table)
	a := server(t, storeA, clk)
	b := server(t, storeB, clk)

	body, cookie := get(t, a, "/count", nil)
	if body != "1" || cookie == nil {
		t.Fatalf("first request on A: %q, cookie %v", body, cookie)
	}
	if body, _ := get(t, b, "/count", cookie); body != "2" {
		t.Fatalf("A's cookie on B counted %q, want 2", body)
	}
	if body, _ := get(t, a, "/count", cookie); body != "3" {
		t.Fatalf("back on A counted %q, want 3", body)
	}

	// Concurrent requests on both servers, each setting its own key of the
	// same session: every change survives the compare-and-swap retries.
	const writers = 16
	var wg sync.WaitGroup
	for i := range writers {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if body, _ := get(t, srv, fmt.Sprintf("/set?k=k%d&v=v%d", i, i), cookie); body != "ok" {
				t.Errorf("set k%d: %q", i, body)
			}
		}()
	}
	wg.Wait()
	for i := range writers {
		srv := b
		if i%2 == 1 {
			srv = a
		}
		if body, _ := get(t, srv, "/get?k=k"+strconv.Itoa(i), cookie); body != "v"+strconv.Itoa(i) {
			t.Errorf("k%d = %q after concurrent writes", i, body)
		}
	}
	if body, _ := get(t, b, "/count", cookie); body != "4" {
		t.Fatalf("counter after the concurrent writes: %q, want 4", body)
	}

	// Killed on B: gone for A too, and A never brings it back.
	if body, _ := get(t, b, "/kill", cookie); body != "killed" {
		t.Fatalf("kill on B: %q", body)
	}
	body, fresh := get(t, a, "/count", cookie)
	if body != "1" || fresh == nil || fresh.Value == cookie.Value {
		t.Fatalf("killed session on A: %q with cookie %v, want a new session", body, fresh)
	}
	var n int
	if err := storeA.DB().QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d rows (%v), want only the new session", n, err)
	}
}

// TestRoundTripsPerRequest counts exchanges with the server for each kind
// of request, through the manager, on a warm single-connection pool.
func TestRoundTripsPerRequest(t *testing.T) {
	var rt roundTrips
	store := newTestStore(t, "ws_request_trips", func(c *mysqldrv.Config) { c.DialFunc = rt.dialer() })
	store.DB().SetMaxOpenConns(1)
	clk := conformance.NewFakeClock()
	clk.Set(t0)
	srv := server(t, store, clk, session.WithTouchInterval(time.Minute))
	var cookie *http.Cookie
	measure := func(name, path string, want int64) {
		t.Helper()
		before := rt.count()
		_, c := get(t, srv, path, cookie)
		if c != nil && c.MaxAge >= 0 {
			cookie = c
		}
		got := rt.count() - before
		t.Logf("%-34s %d round trip(s)", name, got)
		if got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	measure("new session (Create)", "/count", 1)
	measure("read-only (Load)", "/get?k=count", 1)
	measure("counter (Load + Update)", "/count", 2)
	clk.Advance(2 * time.Minute)
	measure("read-only, touch due (Load + Touch)", "/get?k=count", 2)
	measure("no session use", "/static", 0)
	measure("kill (Delete)", "/kill", 1)
}
