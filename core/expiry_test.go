package session

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntouchedRequestCostsNoStoreCall(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	e.store.resetCounts()
	resp, _ := c.do("/none")
	if n := e.store.total(); n != 0 {
		t.Fatalf("a request that never used its session made %d store calls", n)
	}
	if len(setCookies(resp)) != 0 || resp.Header.Get("Vary") != "" {
		t.Fatalf("untouched request changed headers: %v", resp.Header)
	}
}

func TestUnmodifiedNewSessionIsNotStored(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	resp, body := e.rawGet("/read", "")
	if body != "0" {
		t.Fatalf("body %q", body)
	}
	if n := e.store.total(); n != 0 {
		t.Fatalf("reading a new session made %d store calls", n)
	}
	if len(setCookies(resp)) != 0 {
		t.Fatalf("an unmodified new session got a cookie: %q", setCookies(resp))
	}
}

func TestTouchThrottling(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}),
		WithTimeout(time.Hour), WithTouchInterval(5*time.Minute))
	c := e.client()
	c.body("/count")
	key := storeKey(c.cookie(DefaultCookieName))
	created, _ := e.store.get(key)

	e.store.resetCounts()
	e.clock.Advance(5*time.Minute - time.Nanosecond)
	if got := c.body("/read"); got != "1" {
		t.Fatalf("read %q", got)
	}
	if n := e.store.writes(); n != 0 {
		t.Fatalf("a read-only request within the touch interval made %d writes", n)
	}
	if n := e.store.count("Load"); n != 1 {
		t.Fatalf("read-only request made %d loads, want 1", n)
	}

	e.clock.Advance(time.Nanosecond)
	c.body("/read")
	if n, w := e.store.count("Touch"), e.store.writes(); n != 1 || w != 1 {
		t.Fatalf("after the touch interval: %d touches, %d writes; want exactly one Touch", n, w)
	}
	rec, _ := e.store.get(key)
	if !rec.ATime.Equal(e.clock.Now()) || rec.Version != created.Version || string(rec.Data) != string(created.Data) {
		t.Fatalf("Touch changed more than ATime: %+v -> %+v", created, rec)
	}
}

func TestIdleExpiryExactlyAtTheBoundary(t *testing.T) {
	const timeout = 30 * time.Minute
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithTimeout(timeout))
	c := e.client()
	c.body("/count")
	c.body("/count")
	e.clock.Advance(timeout) // exactly timeout idle: still valid
	if got := c.body("/count"); got != "3" {
		t.Fatalf("exactly at the timeout: got %q, want 3 (still valid)", got)
	}
	e.clock.Advance(timeout + time.Nanosecond) // one nanosecond beyond: expired, though no cleanup ran
	if got := c.body("/count"); got != "1" {
		t.Fatalf("1ns past the timeout: got %q, want 1 (expired)", got)
	}
	if n := e.store.count("Cleanup"); n != 0 {
		t.Fatalf("expiry relied on %d cleanups", n)
	}
	if e.store.len() != 1 {
		t.Fatalf("store holds %d records: the expired one was not deleted on sight", e.store.len())
	}
}

func TestAbsoluteLifetime(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}),
		WithTimeout(time.Hour), WithLifetime(3*time.Hour), WithTouchInterval(0))
	c := e.client()
	c.body("/count")
	n := 1
	for i := 0; i < 6; i++ { // active every 30 minutes: never idle
		e.clock.Advance(30 * time.Minute)
		n++
		if got := c.body("/count"); got != strconv.Itoa(n) {
			t.Fatalf("at %v: got %q, want %d", time.Duration(i+1)*30*time.Minute, got, n)
		}
	}
	e.clock.Advance(time.Nanosecond) // 3h + 1ns after creation
	if got := c.body("/count"); got != "1" {
		t.Fatalf("past the absolute lifetime: got %q, want a fresh session", got)
	}
}

func TestIgnoreExpiryFalse(t *testing.T) {
	var ran atomic.Int32
	mux := http.NewServeMux()
	mux.Handle("/", counterMux())
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran.Add(1); mux.ServeHTTP(w, r) })
	e := newEnv(t, h, WithInitializer(map[string]any{"count": 0}), WithIgnoreExpiry(false),
		WithTimeout(time.Hour), WithExpiredMessage("Your session has ended"))
	c := e.client()
	c.body("/count")
	e.clock.Advance(time.Hour + 1)
	ran.Store(0)
	resp, body := c.do("/count")
	if resp.StatusCode != 200 || body != "Your session has ended" {
		t.Fatalf("expired session: status %d body %q", resp.StatusCode, body)
	}
	if ran.Load() != 0 {
		t.Fatal("the handler ran for an expired session")
	}
	sc := setCookies(resp)
	if len(sc) != 1 || !strings.Contains(sc[0], "Max-Age=0") || !strings.Contains(sc[0], "Path=/") {
		t.Fatalf("want one deletion cookie, got %q", sc)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("expired response Cache-Control = %q", resp.Header.Get("Cache-Control"))
	}
	// The browser dropped the cookie: the next request starts afresh.
	if got := c.body("/count"); got != "1" {
		t.Fatalf("after the expired response: %q", got)
	}
	// A well-formed id never issued is "expired" too: web.py cannot tell
	// either, and neither can we once a record is gone.
	unknown := strings.Repeat("A", 43)
	resp, body = e.rawGet("/count", DefaultCookieName+"="+unknown)
	if resp.StatusCode != 200 || body != "Your session has ended" {
		t.Fatalf("unknown id: status %d body %q", resp.StatusCode, body)
	}
}

func TestIgnoreExpiryTrueGivesFreshSession(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithTimeout(time.Hour))
	c := e.client()
	c.body("/count")
	c.body("/count")
	old := c.cookie(DefaultCookieName)
	e.clock.Advance(2 * time.Hour)
	if got := c.body("/count"); got != "1" {
		t.Fatalf("got %q, want a fresh session", got)
	}
	if c.cookie(DefaultCookieName) == old {
		t.Fatal("the expired id was reused")
	}
}

func TestCustomExpiredHandler(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(w.Header().Get("Set-Cookie"), "Max-Age=0") {
			t.Error("deletion cookie not set before the expired handler ran")
		}
		http.Redirect(w, r, "/login", http.StatusSeeOther)
	})
	e := newEnv(t, counterMux(), WithIgnoreExpiry(false), WithExpiredHandler(h))
	resp, _ := e.rawGet("/count", DefaultCookieName+"="+strings.Repeat("A", 43))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestIgnoreChangeIP(t *testing.T) {
	ip := func(r *http.Request) string { return r.Header.Get("X-Test-IP") }
	for _, ignore := range []bool{true, false} {
		e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithIgnoreChangeIP(ignore), WithClientIP(ip))
		c := e.client()
		c.header = http.Header{"X-Test-IP": {"192.0.2.1"}}
		c.body("/count")
		c.body("/count")
		id := c.cookie(DefaultCookieName)

		c.header = http.Header{"X-Test-IP": {"198.51.100.7"}}
		resp, body := c.do("/count")
		if ignore {
			if body != "3" {
				t.Fatalf("ignore_change_ip=true: another IP got %q, want 3", body)
			}
			continue
		}
		if resp.StatusCode != 200 || body != DefaultExpiredMessage || !strings.Contains(resp.Header.Get("Set-Cookie"), "Max-Age=0") {
			t.Fatalf("ignore_change_ip=false: another IP got status %d body %q cookies %q", resp.StatusCode, body, setCookies(resp))
		}
		// The session itself is intact for its own IP.
		req, _ := http.NewRequest("GET", e.srv.URL+"/count", nil)
		req.Header.Set("Cookie", DefaultCookieName+"="+id)
		req.Header.Set("X-Test-IP", "192.0.2.1")
		r2, err := http.DefaultClient.Do(req)
		must(t, err)
		b := make([]byte, 8)
		n, _ := r2.Body.Read(b)
		r2.Body.Close()
		if string(b[:n]) != "3" {
			t.Fatalf("original IP after a rejected change: %q, want 3", b[:n])
		}
	}
}

func TestRemoteIP(t *testing.T) {
	for addr, want := range map[string]string{"192.0.2.1:1234": "192.0.2.1", "[2001:db8::1]:80": "2001:db8::1", "weird": "weird"} {
		if got := RemoteIP(&http.Request{RemoteAddr: addr}); got != want {
			t.Errorf("RemoteIP(%q) = %q, want %q", addr, got, want)
		}
	}
}

func TestKill(t *testing.T) {
	var storeLenDuringHandler int
	e := newEnv(t, http.NotFoundHandler(), WithInitializer(map[string]any{"count": 0}))
	mux := http.NewServeMux()
	mux.Handle("/", counterMux())
	mux.HandleFunc("/kill-check", func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Kill())
		storeLenDuringHandler = e.store.len() // deleted at once, not at commit
	})
	e.srv.Config.Handler = e.m.Middleware(mux)
	c := e.client()
	c.body("/count")
	resp, _ := c.do("/kill-check")
	if storeLenDuringHandler != 0 {
		t.Fatal("Kill did not delete the record at once")
	}
	sc := setCookies(resp)
	if len(sc) != 1 || !strings.HasPrefix(sc[0], DefaultCookieName+"=;") || !strings.Contains(sc[0], "Max-Age=0") ||
		!strings.Contains(sc[0], "Path=/") || !strings.Contains(sc[0], "HttpOnly") {
		t.Fatalf("want one deletion cookie with the usual attributes, got %q", sc)
	}
	if c.cookie(DefaultCookieName) != "" {
		t.Fatal("the browser still holds the cookie")
	}
}

func TestKillNewSession(t *testing.T) {
	e := newEnv(t, counterMux())
	resp, _ := e.rawGet("/reset", "")
	if len(setCookies(resp)) != 0 || e.store.total() != 0 {
		t.Fatalf("killing a brand-new session: cookies %q, %d store calls", setCookies(resp), e.store.total())
	}
}

func TestKillThenWriteStartsNewSession(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		if r.URL.Path == "/logout-login" {
			must(t, s.Kill())
			must(t, s.Set("user", "bob"))
			return
		}
		must(t, s.Set("user", "ann"))
	})
	e := newEnv(t, h)
	c := e.client()
	c.body("/")
	old := c.cookie(DefaultCookieName)
	c.body("/logout-login")
	now := c.cookie(DefaultCookieName)
	if now == "" || now == old {
		t.Fatalf("after kill+set the cookie is %q (old %q): want a new id", now, old)
	}
	if _, ok := e.store.get(storeKey(old)); ok {
		t.Fatal("old record survived")
	}
	rec, ok := e.store.get(storeKey(now))
	if !ok || !strings.Contains(string(rec.Data), `"user":"bob"`) || strings.Contains(string(rec.Data), "ann") {
		t.Fatalf("new record: %q", rec.Data)
	}
}

func TestRegenerate(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		switch r.URL.Path {
		case "/login":
			before := s.ID()
			must(t, s.Regenerate())
			if s.ID() == before {
				t.Error("ID unchanged after Regenerate")
			}
			must(t, s.Set("user", "ann"))
		case "/anon":
			must(t, s.Set("cart", []string{"apple"}))
		case "/who":
			u, _ := Get[string](s, "user")
			cart, _ := Get[[]string](s, "cart")
			w.Write([]byte(u + ":" + strings.Join(cart, ",")))
		}
	})
	e := newEnv(t, h, WithLifetime(time.Hour))
	c := e.client()
	c.body("/anon")
	old := c.cookie(DefaultCookieName)
	e.clock.Advance(50 * time.Minute)
	e.store.resetCounts()
	c.body("/login")
	if n, d := e.store.count("Create"), e.store.count("Delete"); n != 1 || d != 1 {
		t.Errorf("regenerate cost %d creates and %d deletes, want 1 and 1", n, d)
	}
	now := c.cookie(DefaultCookieName)
	if now == old || now == "" {
		t.Fatal("Regenerate did not issue a new id")
	}
	if got := c.body("/who"); got != "ann:apple" {
		t.Fatalf("after regenerate: %q, want data kept", got)
	}
	if _, ok := e.store.get(storeKey(old)); ok {
		t.Fatal("the old record survived Regenerate")
	}
	if _, body := e.rawGet("/who", DefaultCookieName+"="+old); body != ":" {
		t.Fatalf("the old id still works: %q", body)
	}
	// The absolute lifetime restarts at regeneration.
	e.clock.Advance(30 * time.Minute)
	if got := c.body("/who"); got != "ann:apple" {
		t.Fatalf("lifetime not restarted by Regenerate: %q", got)
	}
}

func TestManualCleanup(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithTimeout(time.Hour))
	old, fresh := e.client(), e.client()
	old.body("/count")
	e.clock.Advance(30 * time.Minute)
	fresh.body("/count")
	e.clock.Advance(30*time.Minute + time.Nanosecond) // old is now 1h+1ns idle, fresh 30m
	n, err := e.m.Cleanup(context.Background())
	if err != nil || n != 1 {
		t.Fatalf("Cleanup = %d, %v; want 1 deleted", n, err)
	}
	if got := fresh.body("/count"); got != "2" {
		t.Fatalf("cleanup removed a live session: %q", got)
	}
}

// signalStore reports each Cleanup call on a channel.
type signalStore struct {
	*mapStore
	cleanups chan time.Time
}

func (s signalStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	n, err := s.mapStore.Cleanup(ctx, cutoff)
	select {
	case s.cleanups <- cutoff:
	default:
	}
	return n, err
}

func TestBackgroundCleanupAndClose(t *testing.T) {
	st := signalStore{newMapStore(), make(chan time.Time, 1)}
	clock := newTestClock()
	m, err := New(st, WithClock(clock.Now), WithTimeout(time.Hour), WithCleanupInterval(time.Millisecond))
	must(t, err)
	select {
	case cutoff := <-st.cleanups:
		if !cutoff.Equal(clock.Now().Add(-time.Hour)) {
			t.Errorf("cleanup cutoff %v, want now - timeout = %v", cutoff, clock.Now().Add(-time.Hour))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the background cleanup never ran")
	}
	must(t, m.Close())
	must(t, m.Close()) // idempotent
	// Close returns only once the loop has ended: no further run can start.
	select {
	case <-m.done:
	default:
		t.Fatal("Close returned while the cleanup loop was still running")
	}
}

func TestCleanupDisabled(t *testing.T) {
	st := newMapStore()
	m, err := New(st, WithCleanupInterval(0))
	must(t, err)
	must(t, m.Close())
	if n := st.count("Cleanup"); n != 0 {
		t.Fatalf("cleanup ran %d times while disabled", n)
	}
}

func TestJitter(t *testing.T) {
	for i := 0; i < 1000; i++ {
		if d := jitter(time.Minute); d < 54*time.Second || d >= 66*time.Second {
			t.Fatalf("jitter(1m) = %v, outside ±10%%", d)
		}
	}
}
