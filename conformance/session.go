package conformance

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// The "Session/..." subtests run core's Manager over the store under test
// (behind a spy) with a FakeClock, serve it with httptest, and drive it
// with HTTP clients that keep cookies like a browser.

const (
	cookieName = session.DefaultCookieName
	ipHeader   = "X-Test-IP"
	firstIP    = "192.0.2.1"
	otherIP    = "198.51.100.7"
)

// testSecret signs cookies in the subtests that use WithSecretKey.
var testSecret = []byte("conformance suite signing key, 32+ bytes long")

// sessT is the fixture of a "Session/..." subtest.
type sessT struct {
	*fixture
	clock *FakeClock
	raw   session.Store // the store under test
	ns    string        // its namespace
	spy   *spy          // raw behind the spy, as the manager sees it
	m     *session.Manager
	srv   *httptest.Server
	url   *url.URL

	timeout, touch, lifetime time.Duration

	ran     atomic.Int64 // how many times an application handler ran
	checked int          // spy calls already checked for errors

	errMu sync.Mutex
	errs  []error // what the manager reported to its error handler

	idMu sync.Mutex
	ids  map[string]bool // every session id a response carried

	loaded  chan struct{} // /slowset has loaded its session
	release chan struct{} // /slowset may go on
	relOnce sync.Once
}

// durations returns the timeout, touch interval and lifetime of the
// session subtests: whole multiples of Precision, so that instants aligned
// to it stay aligned.
func durations(s *suite) (timeout, touch, lifetime time.Duration) {
	unit := max(time.Second, s.precision)
	return 3600 * unit, 60 * unit, 7200 * unit
}

func sessFixture(f *fixture, opts ...session.Option) *sessT {
	e := &sessT{
		fixture: f,
		clock:   NewFakeClock(),
		ids:     make(map[string]bool),
		loaded:  make(chan struct{}, 1),
		release: make(chan struct{}),
	}
	e.timeout, e.touch, e.lifetime = durations(f.s)
	e.clock.Set(f.s.align(Epoch))
	e.ns = f.s.namespace(f.t)
	e.raw = f.s.h.NewStore(f.t, e.ns)
	if e.raw == nil {
		f.t.Fatalf("Harness.NewStore(%q) returned a nil store", e.ns)
	}
	e.spy = &spy{inner: e.raw, s: f.s}
	m, err := session.New(e.spy.store(), append(e.baseOptions(), opts...)...)
	if err != nil {
		f.t.Fatalf("session.New: %v", err)
	}
	e.m = m
	f.t.Cleanup(func() { m.Close() })
	e.srv = httptest.NewServer(m.Middleware(e.mux()))
	f.t.Cleanup(e.srv.Close)
	// Runs before srv.Close: a handler still held by a failed subtest
	// must not keep Close waiting.
	f.t.Cleanup(e.releaseSlow)
	e.url, _ = url.Parse(e.srv.URL)
	return e
}

// baseOptions configure every manager of a session subtest.
func (e *sessT) baseOptions() []session.Option {
	return []session.Option{
		session.WithClock(e.clock.Now),
		session.WithCleanupInterval(0),
		session.WithTimeout(e.timeout),
		session.WithTouchInterval(e.touch),
		session.WithClientIP(func(r *http.Request) string { return r.Header.Get(ipHeader) }),
		session.WithMaxDataSize(min(e.s.maxPayload, session.DefaultMaxDataSize)),
		session.WithLogger(slog.New(slog.DiscardHandler)),
		session.WithErrorHandler(e.onError),
	}
}

func (e *sessT) requestTimeout() time.Duration { return 4 * e.s.watchdog }

func (e *sessT) releaseSlow() { e.relOnce.Do(func() { close(e.release) }) }

func (e *sessT) onError(w http.ResponseWriter, r *http.Request, err error) {
	e.errMu.Lock()
	e.errs = append(e.errs, err)
	e.errMu.Unlock()
	if !errors.Is(err, session.ErrCommitted) {
		http.Error(w, "session error: "+err.Error(), session.StatusCode(err))
	}
}

// mux is the application: the web.py counter and a few routes the
// subtests need.
func (e *sessT) mux() http.Handler {
	mux := http.NewServeMux()
	handle := func(path string, h func(w http.ResponseWriter, r *http.Request, s *session.Session) error) {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			e.ran.Add(1)
			if err := h(w, r, session.FromContext(r.Context())); err != nil {
				http.Error(w, "handler: "+err.Error(), http.StatusInternalServerError)
			}
		})
	}
	handle("/count", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		n, err := session.Get[int](s, "count")
		if err != nil && !errors.Is(err, session.ErrNoValue) {
			return err
		}
		if err := s.Set("count", n+1); err != nil {
			return err
		}
		_, err = io.WriteString(w, strconv.Itoa(n+1))
		return err
	})
	handle("/peek", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		return writeValue[int](w, s, "count")
	})
	handle("/get", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		return writeValue[string](w, s, r.URL.Query().Get("k"))
	})
	handle("/set", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		if err := s.Set(r.URL.Query().Get("k"), r.URL.Query().Get("v")); err != nil {
			return err
		}
		_, err := io.WriteString(w, "ok")
		return err
	})
	handle("/kill", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		if err := s.Kill(); err != nil {
			return err
		}
		_, err := io.WriteString(w, "killed")
		return err
	})
	handle("/regen", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		if err := s.Regenerate(); err != nil {
			return err
		}
		_, err := io.WriteString(w, "regenerated")
		return err
	})
	handle("/noop", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		_, err := io.WriteString(w, "no session used")
		return err
	})
	// /slowset loads the session, says so on e.loaded, waits for
	// e.release, and only then sets its key: one side of a deterministic
	// overlap.
	handle("/slowset", func(w http.ResponseWriter, r *http.Request, s *session.Session) error {
		k := r.URL.Query().Get("k")
		if _, err := session.Get[string](s, k); err != nil && !errors.Is(err, session.ErrNoValue) {
			return err
		}
		e.loaded <- struct{}{}
		select {
		case <-e.release:
		case <-time.After(e.requestTimeout()):
			return errors.New("never released")
		}
		if err := s.Set(k, r.URL.Query().Get("v")); err != nil {
			return err
		}
		_, err := io.WriteString(w, "ok")
		return err
	})
	return mux
}

func writeValue[T any](w http.ResponseWriter, s *session.Session, key string) error {
	v, err := session.Get[T](s, key)
	if errors.Is(err, session.ErrNoValue) {
		_, err = io.WriteString(w, "none")
		return err
	}
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(w, v)
	return err
}

// reply is a response, read.
type reply struct {
	path    string
	status  int
	body    string
	cookies []*http.Cookie // the Set-Cookie headers of the session cookie
}

// setCookie returns the value of the session cookie the response sets
// (not deletes), or "".
func (r reply) setCookie() string {
	for _, c := range r.cookies {
		if c.MaxAge >= 0 && c.Value != "" {
			return c.Value
		}
	}
	return ""
}

// deletesCookie reports whether the response tells the browser to drop
// the session cookie.
func (r reply) deletesCookie() bool {
	for _, c := range r.cookies {
		if c.MaxAge < 0 {
			return true
		}
	}
	return false
}

// client is a browser: a cookie jar and a client IP.
type client struct {
	e  *sessT
	hc *http.Client
	ip string
}

func (e *sessT) client() *client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &client{e: e, hc: &http.Client{Jar: jar, Timeout: e.requestTimeout()}, ip: firstIP}
}

// withCookie returns a new client (another browser) presenting value.
func (e *sessT) clientWith(value string) *client {
	c := e.client()
	c.setCookie(value)
	return c
}

func (c *client) cookie() string {
	for _, ck := range c.hc.Jar.Cookies(c.e.url) {
		if ck.Name == cookieName {
			return ck.Value
		}
	}
	return ""
}

func (c *client) setCookie(v string) {
	c.hc.Jar.SetCookies(c.e.url, []*http.Cookie{{Name: cookieName, Value: v, Path: "/"}})
}

// try sends GET path; safe off the test goroutine.
func (c *client) try(path string) (reply, error) {
	req, err := http.NewRequest(http.MethodGet, c.e.srv.URL+path, nil)
	if err != nil {
		return reply{}, err
	}
	req.Header.Set(ipHeader, c.ip)
	return c.e.roundTrip(c.hc, req)
}

func (e *sessT) roundTrip(hc *http.Client, req *http.Request) (reply, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return reply{}, fmt.Errorf("GET %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, fmt.Errorf("GET %s: reading the body: %w", req.URL.Path, err)
	}
	r := reply{path: req.URL.RequestURI(), status: resp.StatusCode, body: string(b)}
	for _, ck := range resp.Cookies() {
		if ck.Name == cookieName {
			r.cookies = append(r.cookies, ck)
			if ck.MaxAge >= 0 && ck.Value != "" {
				e.idMu.Lock()
				e.ids[cookieID(ck.Value)] = true
				e.idMu.Unlock()
			}
		}
	}
	return r, nil
}

// get sends GET path and requires a 200; it ends the subtest on a
// transport error, a 500 or a broken store call.
func (c *client) get(path string) reply {
	c.e.t.Helper()
	r, err := c.try(path)
	return c.e.settle(r, err)
}

// rawGet sends GET path with exactly the given Cookie header, from a
// client without a jar.
func (e *sessT) rawGet(path, cookie string) reply {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.srv.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set(ipHeader, firstIP)
	req.Header.Set("Cookie", cookie)
	r, err := e.roundTrip(&http.Client{Timeout: e.requestTimeout()}, req)
	return e.settle(r, err)
}

func (e *sessT) settle(r reply, err error) reply {
	e.t.Helper()
	e.checkCalls()
	if err != nil {
		e.t.Fatal(err)
	}
	if r.status != http.StatusOK {
		e.errMu.Lock()
		errs := append([]error(nil), e.errs...)
		e.errMu.Unlock()
		e.t.Fatalf("GET %s: status %d, body %q; session errors reported: %v; store calls: %s", r.path, r.status, r.body, errs, describe(e.spy.all()))
	}
	return r
}

// checkCalls fails the subtest on a store call that hung or panicked, and
// reports store errors a correct store would not have returned.
func (e *sessT) checkCalls() {
	e.t.Helper()
	calls := e.spy.since(e.checked)
	e.checked += len(calls)
	for _, c := range calls {
		if isBroken(c.err) {
			e.t.Fatal(c.err)
		}
		if !expectedErr(c.err) {
			e.errorf("the store returned an unexpected error to the manager: %s", c)
		}
	}
}

// cookieID returns the session id a cookie value carries.
func cookieID(v string) string {
	id, _, _ := strings.Cut(v, ".")
	return id
}

// storeKey is the documented key of a session id: base64url(SHA-256(id)).
func storeKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// newID returns a well-formed id that the manager never issued.
func newID() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// record loads the stored record of the session whose cookie is v,
// bypassing the spy.
func (e *sessT) record(v string) (session.Record, error) {
	e.t.Helper()
	rec, err := call(e.s, context.Background(), "Load", func(ctx context.Context) (session.Record, error) {
		return e.raw.Load(ctx, storeKey(cookieID(v)))
	})
	if isBroken(err) {
		e.t.Fatal(err)
	}
	return rec, err
}

// expectGone reports a record still stored for the session whose cookie is v.
func (e *sessT) expectGone(v, when string) {
	e.t.Helper()
	rec, err := e.record(v)
	switch {
	case err == nil:
		e.errorf("%s: the session's record is still in the store (Version %d), want it deleted", when, rec.Version)
	case !errors.Is(err, session.ErrNotFound):
		e.errorf("%s: loading the session's record: %v, want ErrNotFound", when, err)
	}
}

func (e *sessT) expectBody(r reply, want, what string) bool {
	e.t.Helper()
	if r.body != want {
		e.errorf("%s: GET %s answered %q, want %q", what, r.path, r.body, want)
		return false
	}
	return true
}

// expectExpired checks the expired response: status 200, the expired
// message, a deletion cookie, and the application's handler not run.
func (e *sessT) expectExpired(r reply, ranBefore int64, what string) {
	e.t.Helper()
	if r.body != session.DefaultExpiredMessage {
		e.errorf("%s: GET %s answered %q, want the expired response %q", what, r.path, r.body, session.DefaultExpiredMessage)
	}
	if !r.deletesCookie() {
		e.errorf("%s: the expired response carries no deletion cookie (Max-Age=0); Set-Cookie: %v", what, r.cookies)
	}
	if n := e.ran.Load() - ranBefore; n != 0 {
		e.errorf("%s: the application's handler ran %d time(s), want 0 (the expired response replaces it)", what, n)
	}
}

func (e *sessT) writes(calls []spyCall) int {
	return count(calls, "Create", "Update", "Touch", "Delete")
}

// --- The checks ------------------------------------------------------------

func checkSessionCounter(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	for _, want := range []string{"1", "2", "3"} {
		e.expectBody(c.get("/count"), want, "counter")
	}
	id0 := c.cookie()
	if id0 == "" {
		e.fatalf("after three counted requests the browser holds no session cookie")
	}
	r := c.get("/kill")
	if !r.deletesCookie() {
		e.errorf("GET /kill: no deletion cookie in the response (Set-Cookie: %v)", r.cookies)
	}
	e.expectGone(id0, "after kill")
	e.expectBody(c.get("/count"), "1", "counter after kill (a new session)")
	if id1 := c.cookie(); id1 == "" || id1 == id0 {
		e.errorf("after kill and a new count the cookie is %q, want a new id, not %q", id1, id0)
	}
	replay := e.clientWith(id0)
	e.expectBody(replay.get("/count"), "1", "counter presented with the killed session's cookie (a killed session never comes back)")
}

func checkSessionIsolation(f *fixture) {
	e := sessFixture(f)
	a, b := e.client(), e.client()
	steps := []struct {
		c    *client
		who  string
		path string
		want string
	}{
		{a, "A", "/count", "1"}, {b, "B", "/count", "1"}, {a, "A", "/count", "2"}, {a, "A", "/count", "3"},
		{b, "B", "/count", "2"}, {a, "A", "/peek", "3"}, {b, "B", "/peek", "2"},
	}
	for i, s := range steps {
		e.expectBody(s.c.get(s.path), s.want, fmt.Sprintf("step %d, client %s", i+1, s.who))
	}
	if a.cookie() == b.cookie() {
		e.errorf("two clients got the same session cookie %q", a.cookie())
	}
}

// hostileCheck returns the check that a cookie value made by bad (from a
// live session's cookie) gets a fresh session and never reaches the store
// as such. lookup says whether the value is a well-formed id, which the
// manager may look up under its hashed key.
func hostileCheck(bad func(live string) string, signed, lookup bool) func(f *fixture) {
	return func(f *fixture) {
		var opts []session.Option
		if signed {
			opts = append(opts, session.WithSecretKey(testSecret))
		}
		e := sessFixture(f, opts...)
		live := e.client()
		live.get("/count")
		live.get("/count")
		lv := live.cookie()
		v := bad(lv)
		m := e.spy.mark()
		r := e.rawGet("/count", cookieName+"="+v)
		e.expectBody(r, "1", fmt.Sprintf("counter presented with the cookie %s (a hostile cookie gets a fresh session)", quoteShort(v)))
		nv := r.setCookie()
		switch {
		case nv == "":
			e.errorf("the fresh session's response sets no cookie")
		case nv == v || cookieID(nv) == cookieID(v):
			e.errorf("the manager adopted the presented value %s as the new session's id", quoteShort(v))
		case nv == lv:
			e.errorf("the hostile cookie was answered with the live session's cookie")
		}
		calls := e.spy.since(m)
		for _, c := range calls {
			if p := hostileProblem(c, v); p != "" {
				e.errorf("the cookie %s reached the store as such: %s", quoteShort(v), p)
			}
		}
		if lookup {
			for _, c := range calls {
				if c.op == "Load" && c.key != storeKey(cookieID(v)) {
					e.errorf("Load(%s) while serving an unknown id: the only lookup may be of its hashed key", short(c.key))
				}
				if c.op == "Create" && c.key == storeKey(cookieID(v)) {
					e.errorf("Create under the hashed key of the presented unknown id: an id the server did not issue must never be adopted")
				}
			}
			e.expectGone(v, "the presented unknown id")
		} else if n := count(calls, "Load", "Update", "Touch", "Delete"); n > 0 {
			e.errorf("a malformed cookie %s caused store calls beyond storing the fresh session: %s (it must be treated as no cookie)", quoteShort(v), describe(calls))
		}
		e.expectBody(live.get("/peek"), "2", "the live session after the hostile request")
	}
}

func quoteShort(v string) string {
	if len(v) > 60 {
		return fmt.Sprintf("%q… (%d bytes)", v[:40], len(v))
	}
	return fmt.Sprintf("%q", v)
}

// nonCanonical spells the id's last character with different unused low
// bits: base64 that decodes to the same bytes but is not the id.
func nonCanonical(id string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	i := strings.IndexByte(alphabet, id[len(id)-1])
	if i < 0 {
		return id + "x"
	}
	return id[:len(id)-1] + string(alphabet[i^1])
}

// badSignature keeps the id and changes the signature.
func badSignature(v string) string {
	id, sig, ok := strings.Cut(v, ".")
	if !ok || sig == "" {
		return v + ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	}
	c := byte('A')
	if sig[0] == 'A' {
		c = 'B'
	}
	return id + "." + string(c) + sig[1:]
}

func checkIdleAtBoundary(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	id0 := c.cookie()
	e.clock.Advance(e.timeout)
	e.expectBody(c.get("/count"), "2", fmt.Sprintf("counter exactly the timeout (%v) after the last access (still valid)", e.timeout))
	if c.cookie() != id0 {
		e.errorf("the session's cookie changed at the boundary: the session was replaced")
	}
}

func checkIdlePastBoundary(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	e.expectBody(c.get("/count"), "2", "counter")
	id0 := c.cookie()
	e.clock.Advance(e.timeout + e.s.step)
	e.expectBody(c.get("/count"), "1", fmt.Sprintf("counter the timeout plus %v after the last access (expired: a fresh session)", e.s.step))
	if c.cookie() == id0 {
		e.errorf("the expired session's id %q is still in use", id0)
	}
	e.expectGone(id0, "the expired session, once a request found it expired")
}

func checkLifetime(f *fixture) {
	_, _, lifetime := durations(f.s)
	e := sessFixture(f, session.WithLifetime(lifetime))
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	gap := 5 * e.timeout / 6
	n := 1
	for elapsed := time.Duration(0); elapsed < e.lifetime; {
		step := min(gap, e.lifetime-elapsed)
		e.clock.Advance(step)
		elapsed += step
		n++
		e.expectBody(c.get("/count"), strconv.Itoa(n), fmt.Sprintf("active session %v after its creation (lifetime %v)", elapsed, e.lifetime))
	}
	e.clock.Advance(e.s.step)
	e.expectBody(c.get("/count"), "1", fmt.Sprintf("active session the lifetime %v plus %v after its creation (expired however active)", e.lifetime, e.s.step))
}

func checkIgnoreExpiryTrue(f *fixture) {
	e := sessFixture(f, session.WithIgnoreExpiry(true))
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	id0 := c.cookie()
	e.clock.Advance(e.timeout + e.s.step)
	ran := e.ran.Load()
	r := c.get("/count")
	e.expectBody(r, "1", "counter with an expired session's cookie and ignore_expiry true (a fresh session, silently)")
	if e.ran.Load() == ran {
		e.errorf("the application's handler did not run")
	}
	if nv := r.setCookie(); nv == "" || nv == id0 {
		e.errorf("the fresh session's cookie is %q, want a new id", nv)
	}
	e.expectBody(e.rawGet("/count", cookieName+"="+newID()), "1", "counter with a well-formed unknown id and ignore_expiry true")
}

func checkIgnoreExpiryFalse(f *fixture) {
	e := sessFixture(f, session.WithIgnoreExpiry(false))
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	e.expectBody(c.get("/count"), "2", "counter of a valid session with ignore_expiry false")
	id0 := c.cookie()
	e.clock.Advance(e.timeout + e.s.step)
	ran := e.ran.Load()
	e.expectExpired(c.get("/count"), ran, "an expired session's cookie with ignore_expiry false")
	e.expectGone(id0, "the expired session after the expired response")
	e.expectBody(c.get("/count"), "1", "counter after the browser dropped the expired cookie")
	ran = e.ran.Load()
	e.expectExpired(e.rawGet("/count", cookieName+"="+newID()), ran, "a well-formed unknown id with ignore_expiry false")
}

func checkIgnoreChangeIPTrue(f *fixture) {
	e := sessFixture(f, session.WithIgnoreChangeIP(true))
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	moved := e.clientWith(c.cookie())
	moved.ip = otherIP
	e.expectBody(moved.get("/count"), "2", "counter from another IP with ignore_change_ip true (accepted)")
	e.expectBody(c.get("/count"), "3", "counter from the first IP again")
}

func checkIgnoreChangeIPFalse(f *fixture) {
	e := sessFixture(f, session.WithIgnoreChangeIP(false))
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	e.expectBody(c.get("/count"), "2", "counter from the same IP with ignore_change_ip false")
	moved := e.clientWith(c.cookie())
	moved.ip = otherIP
	ran := e.ran.Load()
	e.expectExpired(moved.get("/count"), ran, "the session's cookie from another IP with ignore_change_ip false")
	e.expectBody(c.get("/count"), "3", "counter from the first IP after another IP was refused (the session stays valid there)")
}

func checkRegenerate(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	e.expectBody(c.get("/count"), "2", "counter")
	old := c.cookie()
	r := c.get("/regen")
	nv := r.setCookie()
	if nv == "" || nv == old {
		e.fatalf("GET /regen set the cookie %q, want a new id (old %q)", nv, old)
	}
	e.expectGone(old, "the old id's record after Regenerate")
	rec, err := e.record(nv)
	if err != nil {
		e.errorf("the new id's record after Regenerate: %v, want it stored", err)
	} else if rec.Version != 1 {
		e.errorf("the new id's record after Regenerate is at Version %d, want 1 (a new record)", rec.Version)
	}
	e.expectBody(c.get("/count"), "3", "counter after Regenerate (the data moved to the new id)")
	e.expectBody(e.clientWith(old).get("/peek"), "none", "the old id after Regenerate (dead: a fresh session)")
	e.expectBody(c.get("/peek"), "3", "the new id after the old one was presented")
}

func checkNewUnmodified(f *fixture) {
	e := sessFixture(f, session.WithInitializer(map[string]any{"greeting": "hello"}))
	c := e.client()
	m := e.spy.mark()
	r1 := c.get("/peek")
	e.expectBody(r1, "none", "reading a value of a new session")
	r2 := c.get("/get?k=greeting")
	e.expectBody(r2, "hello", "reading an initial value of a new session")
	if calls := e.spy.since(m); len(calls) > 0 {
		e.errorf("read-only requests on a new session made store calls: %s; want none (a new session nobody wrote into is not stored)", describe(calls))
	}
	for _, r := range []reply{r1, r2} {
		if len(r.cookies) > 0 {
			e.errorf("GET %s on an unmodified new session set a cookie: %v", r.path, r.cookies)
		}
	}
}

func checkUnused(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	m := e.spy.mark()
	r := c.get("/noop")
	e.clock.Advance(2 * e.touch)
	r2 := c.get("/noop")
	if calls := e.spy.since(m); len(calls) > 0 {
		e.errorf("requests whose handler never used the session made store calls: %s; want none", describe(calls))
	}
	for _, r := range []reply{r, r2} {
		if len(r.cookies) > 0 {
			e.errorf("GET %s, which never used the session, set a cookie: %v", r.path, r.cookies)
		}
	}
}

func checkReadOnlyWithin(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	m := e.spy.mark()
	e.expectBody(c.get("/peek"), "1", "read-only request")
	e.clock.Advance(e.touch - e.s.step)
	e.expectBody(c.get("/peek"), "1", fmt.Sprintf("read-only request %v after the last write", e.touch-e.s.step))
	calls := e.spy.since(m)
	if n := e.writes(calls); n > 0 {
		e.errorf("read-only requests within the touch interval (%v) wrote to the store: %s; want only Loads", e.touch, describe(calls))
	}
}

func checkReadOnlyAfter(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	id := c.cookie()
	before, err := e.record(id)
	if err != nil {
		e.fatalf("the session's record after the first count: %v", err)
	}
	e.clock.Advance(e.touch)
	m := e.spy.mark()
	e.expectBody(c.get("/peek"), "1", fmt.Sprintf("read-only request the touch interval (%v) after the last write", e.touch))
	calls := e.spy.since(m)
	if count(calls, "Touch") != 1 || count(calls, "Create", "Update", "Delete") != 0 {
		e.errorf("a read-only request once the touch interval has passed made %s; want Load and exactly one Touch", describe(calls))
	}
	after, err := e.record(id)
	if err != nil {
		e.fatalf("the session's record after the touch: %v", err)
	}
	if p := e.s.recordProblems(after, want{data: before.Data, atime: e.clock.Now(), created: before.Created, version: before.Version}); len(p) > 0 {
		e.errorf("the record after the touch differs from the record before it with ATime set to now:\n\t%s", strings.Join(p, "\n\t"))
	}
	e.clock.Advance(e.timeout)
	e.expectBody(c.get("/peek"), "1", "read-only request the timeout after the touch (idle time counts from the touch)")
}

// startSlow starts GET /slowset?k=k&v=v from c and waits until its
// handler has loaded the session. The returned channel yields its reply
// once e.releaseSlow is called.
func (e *sessT) startSlow(c *client, k, v string) <-chan reply {
	e.t.Helper()
	out := make(chan reply, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := c.try("/slowset?k=" + url.QueryEscape(k) + "&v=" + url.QueryEscape(v))
		if err != nil {
			errc <- err
			return
		}
		out <- r
	}()
	select {
	case <-e.loaded:
	case err := <-errc:
		e.t.Fatalf("the slow request failed before loading its session: %v", err)
	case r := <-out:
		e.t.Fatalf("the slow request ended before loading its session: status %d, body %q", r.status, r.body)
	case <-time.After(e.requestTimeout()):
		e.t.Fatalf("the slow request did not load its session within %v", e.requestTimeout())
	}
	res := make(chan reply, 1)
	go func() {
		select {
		case r := <-out:
			res <- r
		case err := <-errc:
			res <- reply{status: -1, body: err.Error()}
		}
	}()
	return res
}

// finishSlow releases the slow request and returns its reply, which must
// have status want (or 200 when want is 0).
func (e *sessT) finishSlow(res <-chan reply, want int) reply {
	e.t.Helper()
	e.releaseSlow()
	select {
	case r := <-res:
		if r.status == -1 {
			e.t.Fatal(r.body)
		}
		if want != 0 && r.status == want {
			e.checkCalls()
			return r
		}
		return e.settle(r, nil)
	case <-time.After(e.requestTimeout()):
		e.t.Fatalf("the slow request did not finish within %v of its release", e.requestTimeout())
	}
	return reply{}
}

func checkOverlap(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	m := e.spy.mark()
	slow := e.startSlow(c, "a", "from A")
	e.expectBody(c.get("/set?k=b&v=from+B"), "ok", "request B, while A holds the loaded session")
	// A 409 is let through here, so that the store's calls explain it.
	ra := e.finishSlow(slow, http.StatusConflict)
	conflicted, notFound := false, false
	for _, call := range e.spy.since(m) {
		if call.op == "Update" && errors.Is(call.err, session.ErrConflict) {
			conflicted = true
		}
		if call.op == "Update" && errors.Is(call.err, session.ErrNotFound) {
			notFound = true
		}
	}
	switch {
	case !conflicted && notFound:
		e.errorf("request A saved with the Version it loaded, after B had saved a newer one, and the store answered ErrNotFound, though the record exists at that newer Version: that is ErrConflict (on which the manager merges and retries; on ErrNotFound it drops A's change). A conditional UPDATE ... WHERE key = ? AND version = ? that matched no row must check whether the key exists before answering ErrNotFound; calls: %s", describe(e.spy.since(m)))
	case !conflicted:
		e.errorf("request A saved with the Version it loaded, after B had saved a newer one, and the store reported no ErrConflict: the store did not compare versions; calls: %s", describe(e.spy.since(m)))
	}
	if ra.status != http.StatusOK {
		e.fatalf("request A, finishing after B: status %d, body %q, want 200 (it changed another key than B)", ra.status, ra.body)
	}
	e.expectBody(ra, "ok", "request A, finishing after B")
	e.expectBody(c.get("/get?k=a"), "from A", "key a, set by request A")
	e.expectBody(c.get("/get?k=b"), "from B", "key b, set by request B while A was in flight (lost update?)")
	e.expectBody(c.get("/peek"), "1", "the counter neither request touched")
}

func checkKillInFlight(f *fixture) {
	e := sessFixture(f)
	c := e.client()
	e.expectBody(c.get("/count"), "1", "counter")
	id0 := c.cookie()
	inflight := e.clientWith(id0)
	slow := e.startSlow(inflight, "a", "from the request in flight")
	r := c.get("/kill")
	if !r.deletesCookie() {
		e.errorf("GET /kill: no deletion cookie in the response")
	}
	m := e.spy.mark()
	// Its change cannot be saved into the killed session, so it must not
	// be told it was: 409 Conflict from the default status mapping.
	ra := e.finishSlow(slow, http.StatusConflict)
	if ra.status != http.StatusConflict {
		e.errorf("the request in flight, finishing after the kill: status %d, want 409 (its change was not saved)", ra.status)
	}
	for _, ck := range ra.cookies {
		if cookieID(ck.Value) == cookieID(id0) {
			e.errorf("the request in flight re-sent the killed session's cookie: %v", ck)
		}
	}
	if calls := e.spy.since(m); count(calls, "Create") > 0 {
		e.errorf("the request in flight created a record after the kill: %s", describe(calls))
	}
	e.expectGone(id0, "the killed session, after a request in flight on it saved a change")
	e.expectBody(e.clientWith(id0).get("/peek"), "none", "the killed session's cookie, after the request in flight (a fresh session)")
}

func checkSessionCleanup(f *fixture) {
	e := sessFixture(f)
	idle, edge, young := e.client(), e.client(), e.client()
	e.expectBody(idle.get("/count"), "1", "counter")
	e.clock.Advance(e.s.step)
	e.expectBody(edge.get("/count"), "1", "counter")
	e.clock.Advance(e.timeout / 2)
	e.expectBody(young.get("/count"), "1", "counter")
	e.clock.Advance(e.timeout - e.timeout/2)
	// Now idle is timeout+step old, edge exactly timeout, young half of it.
	ctx, cancel := context.WithTimeout(context.Background(), e.requestTimeout())
	defer cancel()
	n, err := e.m.Cleanup(ctx)
	e.checkCalls()
	if err != nil {
		e.fatalf("Manager.Cleanup: %v", err)
	}
	if n != 1 {
		e.errorf("Manager.Cleanup deleted %d sessions, want 1 (the one idle for longer than the timeout)", n)
	}
	e.expectGone(idle.cookie(), "the session idle for longer than the timeout, after Manager.Cleanup")
	e.expectBody(edge.get("/peek"), "1", "the session idle for exactly the timeout, after Manager.Cleanup (kept, still valid)")
	e.expectBody(young.get("/peek"), "1", "the young session after Manager.Cleanup")
	e.expectBody(idle.get("/peek"), "none", "the cleaned-up session's cookie (a fresh session)")
}

func checkNoRawID(f *fixture) {
	e := sessFixture(f, session.WithSecretKey(testSecret))
	a, b := e.client(), e.client()
	a.get("/count")
	a.get("/set?k=user&v=ann")
	e.clock.Advance(e.touch)
	a.get("/peek")
	a.get("/regen")
	a.get("/count")
	b.get("/count")
	b.get("/kill")
	b.get("/count")
	e.rawGet("/count", cookieName+"="+newID())
	e.idMu.Lock()
	ids := make([]string, 0, len(e.ids))
	for id := range e.ids {
		ids = append(ids, id)
	}
	e.idMu.Unlock()
	if len(ids) < 4 {
		e.fatalf("the flow issued %d session ids, want at least 4", len(ids))
	}
	keys := map[string]bool{}
	for _, c := range e.spy.all() {
		for _, id := range ids {
			if form := rawIDProblem([]byte(c.key), id); form != "" {
				e.errorf("%s was called with a key holding %s", c.op, form)
			}
			if form := rawIDProblem(c.data, id); form != "" {
				e.errorf("%s handled data holding %s", c.op, form)
			}
		}
		if c.key != "" {
			keys[c.key] = true
		}
	}
	for k := range keys {
		rec, err := call(e.s, context.Background(), "Load", func(ctx context.Context) (session.Record, error) { return e.raw.Load(ctx, k) })
		if isBroken(err) {
			e.t.Fatal(err)
		}
		for _, id := range ids {
			if form := rawIDProblem(rec.Data, id); err == nil && form != "" {
				e.errorf("the record stored under %s holds %s", short(k), form)
			}
		}
	}
}
