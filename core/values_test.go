package session

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

func TestCounterFlow(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	for i, want := range []string{"1", "2", "3"} {
		if got := c.body("/count"); got != want {
			t.Fatalf("request %d: got %q, want %q", i+1, got, want)
		}
	}
	first := c.cookie(DefaultCookieName)
	if got := c.body("/reset"); got != "" {
		t.Fatalf("/reset body = %q, want empty", got)
	}
	if e.store.len() != 0 {
		t.Fatalf("after /reset the store holds %d records, want 0", e.store.len())
	}
	if got := c.body("/count"); got != "1" {
		t.Fatalf("after reset: got %q, want 1", got)
	}
	if c.cookie(DefaultCookieName) == first {
		t.Fatal("after kill the new session reuses the killed id")
	}
}

func TestIsolation(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	a, b := e.client(), e.client()
	a.body("/count")
	for i := 0; i < 9; i++ {
		if got, want := a.body("/count"), strconv.Itoa(i+2); got != want {
			t.Fatalf("client A: got %s want %s", got, want)
		}
		if got, want := b.body("/count"), strconv.Itoa(i+1); got != want {
			t.Fatalf("client B: got %s want %s", got, want)
		}
	}
}

func TestTypedValues(t *testing.T) {
	type profile struct {
		Name  string   `json:"name"`
		Roles []string `json:"roles"`
	}
	var step atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		switch step.Add(1) {
		case 1:
			must(t, s.Set("n", 42))
			must(t, s.Set("big", int64(1)<<60))
			must(t, s.Set("s", "hé \"quoted\" <tag>"))
			must(t, s.Set("b", true))
			must(t, s.Set("f", 2.5))
			must(t, s.Set("p", profile{Name: "ann", Roles: []string{"admin"}}))
			must(t, s.Set("raw", json.RawMessage(` { "a" : 1 } `)))
		case 2:
			if n, err := Get[int](s, "n"); err != nil || n != 42 {
				t.Errorf("Get[int] = %v, %v", n, err)
			}
			if n, err := Get[int64](s, "big"); err != nil || n != 1<<60 {
				t.Errorf("Get[int64] = %v, %v", n, err)
			}
			if v, err := Get[string](s, "s"); err != nil || v != "hé \"quoted\" <tag>" {
				t.Errorf("Get[string] = %q, %v", v, err)
			}
			if v, err := Get[bool](s, "b"); err != nil || !v {
				t.Errorf("Get[bool] = %v, %v", v, err)
			}
			if v, err := Get[float64](s, "f"); err != nil || v != 2.5 {
				t.Errorf("Get[float64] = %v, %v", v, err)
			}
			if v, err := Get[profile](s, "p"); err != nil || v.Name != "ann" || len(v.Roles) != 1 || v.Roles[0] != "admin" {
				t.Errorf("Get[profile] = %+v, %v", v, err)
			}
			if v, err := Get[map[string]int](s, "raw"); err != nil || v["a"] != 1 {
				t.Errorf("Get[map] of a RawMessage = %v, %v", v, err)
			}
			// A value that does not fit the type asked for is an error, not a zero.
			var typeErr *json.UnmarshalTypeError
			if _, err := Get[int](s, "s"); !errors.As(err, &typeErr) {
				t.Errorf("Get[int] of a string: err = %v, want a *json.UnmarshalTypeError", err)
			}
			if _, err := Get[string](s, "absent"); !errors.Is(err, ErrNoValue) {
				t.Errorf("Get of a missing key: err = %v, want ErrNoValue", err)
			}
			// Values that JSON cannot encode are refused at Set.
			if err := s.Set("ch", make(chan int)); err == nil {
				t.Error("Set of a channel succeeded")
			}
			must(t, s.Delete("n"))
			must(t, s.Delete("never-there"))
		case 3:
			if _, err := Get[int](s, "n"); !errors.Is(err, ErrNoValue) {
				t.Errorf("after Delete, Get = %v, want ErrNoValue", err)
			}
			must(t, s.Clear())
		case 4:
			for _, k := range []string{"s", "b", "p"} {
				if _, err := Get[any](s, k); !errors.Is(err, ErrNoValue) {
					t.Errorf("after Clear, %q still there (err %v)", k, err)
				}
			}
		}
	})
	e := newEnv(t, h)
	c := e.client()
	for i := 0; i < 4; i++ {
		c.body("/")
	}
	// Stored data is our JSON envelope, nothing else.
	for _, rec := range e.store.m {
		if !json.Valid(rec.Data) || !strings.HasPrefix(string(rec.Data), `{"v":1,`) {
			t.Errorf("stored data is not the JSON envelope: %q", rec.Data)
		}
	}
}

func TestNilSession(t *testing.T) {
	var s *Session
	if _, err := Get[int](s, "x"); !errors.Is(err, ErrNoSession) {
		t.Errorf("Get on nil: %v", err)
	}
	for name, err := range map[string]error{
		"Set": s.Set("x", 1), "Delete": s.Delete("x"), "Clear": s.Clear(), "Kill": s.Kill(), "Regenerate": s.Regenerate(),
	} {
		if !errors.Is(err, ErrNoSession) {
			t.Errorf("%s on nil: %v, want ErrNoSession", name, err)
		}
	}
	if s.ID() != "" {
		t.Error("ID of nil session not empty")
	}
	r, _ := http.NewRequest("GET", "/", nil)
	if FromContext(r.Context()) != nil {
		t.Error("FromContext without middleware returned a session")
	}
}

func TestSetSameValueIsNotAChange(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set("k", "v"))
	})
	e := newEnv(t, h)
	c := e.client()
	c.body("/")
	e.store.resetCounts()
	c.body("/")
	if n := e.store.count("Update"); n != 0 {
		t.Fatalf("re-setting an equal value caused %d Updates", n)
	}
}

func TestInitializerMapIsDeepCopied(t *testing.T) {
	init := map[string]any{"cart": []string{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		cart, err := Get[[]string](s, "cart")
		must(t, err)
		must(t, s.Set("cart", append(cart, "apple")))
		io.WriteString(w, strings.Join(cart, ","))
	})
	e := newEnv(t, h, WithInitializer(init))
	init["cart"] = []string{"mutated after New"} // the manager took a snapshot
	a := e.client()
	a.body("/")
	if got := a.body("/"); got != "apple" {
		t.Fatalf("A's cart = %q, want apple", got)
	}
	if got := e.client().body("/"); got != "" {
		t.Fatalf("a new session B starts with cart %q, want empty (initializer shared?)", got)
	}
}

func TestInitializerFuncRunsOnlyForNewSessions(t *testing.T) {
	var calls atomic.Int32
	initFn := func(r *http.Request) (map[string]any, error) {
		calls.Add(1)
		return map[string]any{"lang": r.Header.Get("Accept-Language")}, nil
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		lang, err := Get[string](s, "lang")
		must(t, err)
		must(t, s.Set("seen", true))
		io.WriteString(w, lang)
	})
	e := newEnv(t, h, WithInitializerFunc(initFn))
	c := e.client()
	c.header = http.Header{"Accept-Language": {"fr"}}
	if got := c.body("/"); got != "fr" {
		t.Fatalf("initializer value = %q", got)
	}
	c.header = http.Header{"Accept-Language": {"de"}}
	if got := c.body("/"); got != "fr" {
		t.Fatalf("loaded session re-initialized: lang = %q", got)
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("initializer ran %d times, want 1", n)
	}
}

func TestInitializerNotAppliedToLoadedSessions(t *testing.T) {
	// A session stored before a key was added to the initializer does not
	// get that key on load.
	store := newMapStore()
	clock := newTestClock()
	m1, err := New(store, WithClock(clock.Now), WithCleanupInterval(0))
	must(t, err)
	id := storeSessionDirect(t, m1, map[string]any{"a": 1})
	m2, err := New(store, WithClock(clock.Now), WithCleanupInterval(0), WithInitializer(map[string]any{"b": 2}))
	must(t, err)
	var got error
	h := m2.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, got = Get[int](FromContext(r.Context()), "b")
	}))
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header.Set("Cookie", DefaultCookieName+"="+id)
	h.ServeHTTP(discardWriter{}, req)
	if !errors.Is(got, ErrNoValue) {
		t.Fatalf("loaded session got initializer key b (err %v)", got)
	}
}

func TestInitializerFuncError(t *testing.T) {
	boom := errors.New("boom")
	var handlerErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlerErr = FromContext(r.Context()).Set("x", 1)
	})
	e := newEnv(t, h, WithInitializerFunc(func(*http.Request) (map[string]any, error) { return nil, boom }))
	resp, _ := e.client().do("/")
	if !errors.Is(handlerErr, boom) {
		t.Errorf("Set returned %v, want the initializer's error", handlerErr)
	}
	if resp.StatusCode != 200 {
		t.Errorf("status %d, want the handler's own 200: it got the error, it answers", resp.StatusCode)
	}
	if e.store.len() != 0 {
		t.Error("a session was stored despite the initializer failing")
	}
}

func TestMultipleManagers(t *testing.T) {
	store := newMapStore()
	clock := newTestClock()
	outer, err := New(store, WithClock(clock.Now), WithCleanupInterval(0), WithCookieName("outer"))
	must(t, err)
	inner, err := New(store, WithClock(clock.Now), WithCleanupInterval(0), WithCookieName("inner"))
	must(t, err)
	h := outer.Middleware(inner.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if FromContext(r.Context()) != inner.FromContext(r.Context()) {
			t.Error("FromContext is not the innermost manager's session")
		}
		must(t, outer.FromContext(r.Context()).Set("who", "outer"))
		must(t, inner.FromContext(r.Context()).Set("who", "inner"))
	})))
	req, _ := http.NewRequest("GET", "/", nil)
	rec := newRecorder()
	h.ServeHTTP(rec, req)
	if !hasCookieNamed(rec.Header(), "outer") || !hasCookieNamed(rec.Header(), "inner") {
		t.Fatalf("Set-Cookie = %v, want both cookies", rec.Header().Values("Set-Cookie"))
	}
	if store.len() != 2 {
		t.Fatalf("store holds %d sessions, want 2", store.len())
	}
	if m := (&Manager{}); m.FromContext(req.Context()) != nil {
		t.Error("FromContext of an unrelated manager returned a session")
	}
}

// must reports an unexpected error. It does not stop the test, so it is
// safe in handlers, which run on the server's goroutines.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Error(err)
	}
}
