package session

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The core tests its own semantics against the small store below, with a
// clock of its own. (The conformance module runs the same kind of checks
// against every driver; core cannot import it without a module cycle.)

// mapStore is a straightforward Store that counts its calls and lets a test
// hook in before each call.
type mapStore struct {
	mu    sync.Mutex
	m     map[string]Record
	calls map[string]int
	keys  []string // every key any call was made with, in order
	fail  map[string]error
	// before, if set, runs before every call, outside the lock.
	before func(op, key string)
}

func newMapStore() *mapStore {
	return &mapStore{m: map[string]Record{}, calls: map[string]int{}, fail: map[string]error{}}
}

func (s *mapStore) enter(ctx context.Context, op, key string) error {
	if s.before != nil {
		s.before(op, key)
	}
	s.mu.Lock()
	s.calls[op]++
	s.keys = append(s.keys, key)
	err := s.fail[op]
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return ctx.Err()
}

func (s *mapStore) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

func (s *mapStore) writes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls["Create"] + s.calls["Update"] + s.calls["Touch"] + s.calls["Delete"]
}

func (s *mapStore) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

func (s *mapStore) resetCounts() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = map[string]int{}
	s.keys = nil
}

func (s *mapStore) setFail(op string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail[op] = err
}

func (s *mapStore) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

func (s *mapStore) get(key string) (Record, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[key]
	return r, ok
}

func (s *mapStore) put(key string, r Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[key] = r
}

func (s *mapStore) Load(ctx context.Context, key string) (Record, error) {
	if err := s.enter(ctx, "Load", key); err != nil {
		return Record{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[key]
	if !ok {
		return Record{}, ErrNotFound
	}
	r.Data = append([]byte(nil), r.Data...)
	return r, nil
}

func (s *mapStore) Create(ctx context.Context, key string, rec Record) error {
	if err := s.enter(ctx, "Create", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return ErrExists
	}
	rec.Data = append([]byte(nil), rec.Data...)
	rec.Version = 1
	s.m[key] = rec
	return nil
}

func (s *mapStore) Update(ctx context.Context, key string, rec Record) error {
	if err := s.enter(ctx, "Update", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if !ok {
		return ErrNotFound
	}
	if old.Version != rec.Version {
		return ErrConflict
	}
	old.Data = append([]byte(nil), rec.Data...)
	old.ATime = rec.ATime
	old.Owner = rec.Owner
	old.Version++
	s.m[key] = old
	return nil
}

func (s *mapStore) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.enter(ctx, "Touch", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if !ok {
		return ErrNotFound
	}
	old.ATime = atime
	s.m[key] = old
	return nil
}

func (s *mapStore) Delete(ctx context.Context, key string) error {
	if err := s.enter(ctx, "Delete", key); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return nil
}

// LoadOwned implements OwnerIndex, by a scan: a test store.
func (s *mapStore) LoadOwned(ctx context.Context, owner string) ([]OwnedRecord, error) {
	if err := s.enter(ctx, "LoadOwned", owner); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []OwnedRecord
	for k, r := range s.m {
		if r.Owner == owner {
			r.Data = append([]byte(nil), r.Data...)
			out = append(out, OwnedRecord{Key: k, Record: r})
		}
	}
	return out, nil
}

func (s *mapStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.enter(ctx, "Cleanup", ""); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.m {
		if r.ATime.Before(cutoff) {
			delete(s.m, k)
			n++
		}
	}
	return n, nil
}

// testClock is a settable clock.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func newTestClock() *testClock {
	// Far from today, not UTC, with nanoseconds: nothing may depend on the real clock.
	return &testClock{now: time.Date(2041, 3, 7, 13, 45, 12, 123456789, time.FixedZone("T", 5*3600+45*60))}
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// env is a manager on a mapStore and a test clock, served by an httptest
// server whose handler the test picks per request path.
type env struct {
	t     *testing.T
	store *mapStore
	clock *testClock
	m     *Manager
	srv   *httptest.Server
}

func newEnv(t *testing.T, handler http.Handler, opts ...Option) *env {
	t.Helper()
	e := &env{t: t, store: newMapStore(), clock: newTestClock()}
	opts = append([]Option{WithClock(e.clock.Now), WithCleanupInterval(0), WithLogger(slog.New(slog.DiscardHandler))}, opts...)
	m, err := New(e.store, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.m = m
	t.Cleanup(func() { m.Close() })
	e.srv = httptest.NewServer(m.Middleware(handler))
	t.Cleanup(e.srv.Close)
	return e
}

// counterMux is the web.py counter app plus a few routes the tests need.
func counterMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		n, err := Get[int](s, "count")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := s.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, strconv.Itoa(n+1))
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		n, err := Get[int](FromContext(r.Context()), "count")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		io.WriteString(w, strconv.Itoa(n))
	})
	mux.HandleFunc("/reset", func(w http.ResponseWriter, r *http.Request) {
		if err := FromContext(r.Context()).Kill(); err != nil {
			http.Error(w, err.Error(), 500)
		}
	})
	mux.HandleFunc("/none", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "untouched")
	})
	return mux
}

// client is a browser-like client with a cookie jar.
type client struct {
	e    *env
	http *http.Client
	// header, if set, is added to every request.
	header http.Header
}

func (e *env) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &client{e: e, http: &http.Client{Jar: jar}}
}

// do sends GET path and returns the response with its body read.
func (c *client) do(path string) (*http.Response, string) {
	c.e.t.Helper()
	req, err := http.NewRequest("GET", c.e.srv.URL+path, nil)
	if err != nil {
		c.e.t.Fatal(err)
	}
	for k, vs := range c.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		c.e.t.Fatal(err)
	}
	return resp, string(b)
}

// body sends GET path, requires 200 and returns the body.
func (c *client) body(path string) string {
	c.e.t.Helper()
	resp, b := c.do(path)
	if resp.StatusCode != 200 {
		c.e.t.Fatalf("GET %s: status %d, body %q", path, resp.StatusCode, b)
	}
	return b
}

// cookie returns the session cookie value in the jar, or "".
func (c *client) cookie(name string) string {
	u, _ := url.Parse(c.e.srv.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == name {
			return ck.Value
		}
	}
	return ""
}

// rawGet sends GET path with exactly the given Cookie header and no jar.
func (e *env) rawGet(path, cookie string) (*http.Response, string) {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.srv.URL+path, nil)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func setCookies(resp *http.Response) []string { return resp.Header.Values("Set-Cookie") }

func hasSetCookie(resp *http.Response, name string) bool {
	for _, c := range setCookies(resp) {
		if strings.HasPrefix(c, name+"=") {
			return true
		}
	}
	return false
}

// storeSessionDirect stores a session holding values through m and returns
// its id (the cookie value, unsigned managers only).
func storeSessionDirect(t testing.TB, m *Manager, values map[string]any) string {
	t.Helper()
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k, v := range values {
			must(t, FromContext(r.Context()).Set(k, v))
		}
	}))
	rec := newRecorder()
	req, _ := http.NewRequest("GET", "/", nil)
	h.ServeHTTP(rec, req)
	v := cookieValueFrom(rec.Header(), m.cfg.cookie.name)
	if v == "" {
		t.Fatalf("no session cookie set: %v", rec.Header().Values("Set-Cookie"))
	}
	return v
}

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }

type discardWriter struct{}

func (discardWriter) Header() http.Header         { return http.Header{} }
func (discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (discardWriter) WriteHeader(int)             {}

func hasCookieNamed(h http.Header, name string) bool { return cookieValueFrom(h, name) != "" }

// cookieValueFrom returns the value of the Set-Cookie for name in h, or "".
func cookieValueFrom(h http.Header, name string) string {
	for _, c := range h.Values("Set-Cookie") {
		if v, ok := strings.CutPrefix(c, name+"="); ok {
			v, _, _ = strings.Cut(v, ";")
			return v
		}
	}
	return ""
}

func newTestLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(&lockedWriter{w: w}, nil))
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
