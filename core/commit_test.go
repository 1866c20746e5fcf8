package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestSavedBeforeHeadersGoOut(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set("user", "ann"))
		http.Redirect(w, r, "/next", http.StatusSeeOther)
	})
	e := newEnv(t, h)
	resp, _ := e.rawGet("/", "")
	if resp.StatusCode != http.StatusSeeOther || !hasSetCookie(resp, DefaultCookieName) {
		t.Fatalf("redirect: status %d, cookies %q: the cookie must ride on the redirect", resp.StatusCode, setCookies(resp))
	}
	if e.store.len() != 1 {
		t.Fatal("session not saved on a redirect")
	}
}

func TestErrorResponsesStillSave(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set("tries", 1))
		http.Error(w, "no", http.StatusInternalServerError)
	})
	e := newEnv(t, h)
	resp, _ := e.rawGet("/", "")
	if !hasSetCookie(resp, DefaultCookieName) || e.store.len() != 1 {
		t.Fatal("a handler's own error response did not save the session (web.py saves on errors too)")
	}
}

type errCollector struct {
	mu   sync.Mutex
	errs []error
}

func (c *errCollector) handler(w http.ResponseWriter, r *http.Request, err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
	if !errors.Is(err, ErrCommitted) {
		http.Error(w, "custom: "+err.Error(), http.StatusServiceUnavailable)
	}
}

func (c *errCollector) all() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.errs...)
}

func TestChangeAfterCommitIsReturnedOnce(t *testing.T) {
	var setErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		must(t, s.Set("before", 1))
		io.WriteString(w, "body started")
		setErr = s.Set("after", 2)
		// Reading is still fine after commit.
		if v, err := Get[int](s, "before"); err != nil || v != 1 {
			t.Errorf("read after commit: %v %v", v, err)
		}
	})
	var ec errCollector
	e := newEnv(t, h, WithErrorHandler(ec.handler))
	resp, body := e.rawGet("/", "")
	if !errors.Is(setErr, ErrCommitted) {
		t.Fatalf("Set after the body started returned %v, want ErrCommitted", setErr)
	}
	if errs := ec.all(); len(errs) != 0 {
		t.Fatalf("error handler got %v: the error was returned to the handler, its one owner", errs)
	}
	if resp.StatusCode != 200 || body != "body started" || !hasSetCookie(resp, DefaultCookieName) {
		t.Fatalf("the committed response was disturbed: %d %q", resp.StatusCode, body)
	}
	rec := e.store.m
	for _, r := range rec {
		if strings.Contains(string(r.Data), "after") {
			t.Fatal("a late change was saved behind the response's back")
		}
	}
}

func TestDefaultErrorHandlerDoesNotLogReturnedErrors(t *testing.T) {
	var logs bytes.Buffer
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
		if err := FromContext(r.Context()).Set("late", true); !errors.Is(err, ErrCommitted) {
			t.Errorf("late Set: %v", err)
		}
	})
	e := newEnv(t, h, WithLogger(newTestLogger(&logs)))
	resp, body := e.rawGet("/", "")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("%d %q", resp.StatusCode, body)
	}
	if logs.Len() != 0 {
		t.Fatalf("an error returned to the handler was logged by the middleware too: %q", logs.String())
	}
}

func TestStoreLoadFailure(t *testing.T) {
	var ec errCollector
	var handlerErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, handlerErr = Get[int](FromContext(r.Context()), "count")
		io.WriteString(w, "handler output")
	})
	e := newEnv(t, h, WithErrorHandler(ec.handler))
	id := storeSessionDirect(t, e.m, map[string]any{"count": 1})
	boom := errors.New("database on fire")
	e.store.setFail("Load", boom)
	resp, body := e.rawGet("/", DefaultCookieName+"="+id)
	if !errors.Is(handlerErr, boom) {
		t.Errorf("Get returned %v, want the store's error", handlerErr)
	}
	// The handler got the error: it is its own to answer; the middleware
	// neither reports it again nor replaces the handler's response.
	if resp.StatusCode != http.StatusOK || body != "handler output" {
		t.Fatalf("status %d body %q: the handler's response was replaced", resp.StatusCode, body)
	}
	if errs := ec.all(); len(errs) != 0 {
		t.Fatalf("error handler got %v too", errs)
	}
}

func TestFailedSaveDropsTheHandlersRepresentationHeaders(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set("x", 1))
		w.Header().Set("Location", "/elsewhere")
		w.Header().Set("Content-Encoding", "gzip")
		w.Header().Set("X-Request-Id", "kept")
		w.WriteHeader(http.StatusSeeOther)
	})
	e := newEnv(t, h)
	e.store.setFail("Create", errors.New("read-only database"))
	resp, _ := e.rawGet("/", "")
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if resp.Header.Get("Location") != "" || resp.Header.Get("Content-Encoding") != "" || hasSetCookie(resp, DefaultCookieName) {
		t.Fatalf("the error response carries the handler's headers: %v", resp.Header)
	}
	if resp.Header.Get("X-Request-Id") != "kept" {
		t.Fatal("unrelated headers were dropped")
	}
}

func TestStoreWriteFailureDefault(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithLogger(newTestLogger(&logs)))
	c := e.client()
	c.body("/count")
	rec, _ := e.store.get(storeKey(c.cookie(DefaultCookieName)))
	e.store.setFail("Update", fmt.Errorf("disk full: %w", io.ErrShortWrite))
	resp, body := c.do("/count")
	if resp.StatusCode != 500 || strings.Contains(body, "2") {
		t.Fatalf("failed save: status %d body %q, want 500 without the handler's output", resp.StatusCode, body)
	}
	if !strings.Contains(logs.String(), "disk full") {
		t.Errorf("error not logged: %q", logs.String())
	}
	after, _ := e.store.get(storeKey(c.cookie(DefaultCookieName)))
	if string(after.Data) != string(rec.Data) || after.Version != rec.Version {
		t.Fatal("a failed save changed the stored session")
	}
}

func TestEagerLoadFailure(t *testing.T) {
	var ran bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = true })
	e := newEnv(t, h, WithIgnoreExpiry(false))
	e.store.setFail("Load", errors.New("unreachable"))
	resp, _ := e.rawGet("/", DefaultCookieName+"="+strings.Repeat("A", 43))
	if resp.StatusCode != 500 || ran {
		t.Fatalf("status %d, handler ran %v: a failed strict load must end in the error handler", resp.StatusCode, ran)
	}
}

func TestTouchFailureIsNotFatal(t *testing.T) {
	var logs bytes.Buffer
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithTouchInterval(0), WithLogger(newTestLogger(&logs)))
	c := e.client()
	c.body("/count")
	e.store.setFail("Touch", errors.New("slow disk"))
	e.clock.Advance(1)
	if got := c.body("/read"); got != "1" {
		t.Fatalf("read failed because touch failed: %q", got)
	}
	if !strings.Contains(logs.String(), "slow disk") {
		t.Error("touch failure not logged")
	}
}

func TestDataSizeLimit(t *testing.T) {
	var setErr error
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		must(t, s.Set("small", "ok"))
		setErr = s.Set("big", strings.Repeat("x", 2000))
	})
	e := newEnv(t, h, WithMaxDataSize(1024))
	e.rawGet("/", "")
	if !errors.Is(setErr, ErrTooLarge) {
		t.Fatalf("Set over the limit: %v, want ErrTooLarge", setErr)
	}
	if e.store.len() != 1 {
		t.Fatal("the session was not saved")
	}
	for _, r := range e.store.m {
		if strings.Contains(string(r.Data), "big") || len(r.Data) > 1024 {
			t.Fatalf("the refused value was stored: %d bytes", len(r.Data))
		}
	}
	// Exactly at the limit is fine.
	var exactErr error
	h2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		overhead := len(encodeEnvelope(nil, noIP, nil, map[string]json.RawMessage{"v": json.RawMessage(`""`)}))
		exactErr = s.Set("v", strings.Repeat("y", 1024-overhead))
	})
	e2 := newEnv(t, h2, WithMaxDataSize(1024), WithClientIP(func(*http.Request) string { return "192.0.2.1" }))
	e2.rawGet("/", "")
	if exactErr != nil {
		t.Fatalf("a session of exactly the limit was refused: %v", exactErr)
	}
	for _, r := range e2.store.m {
		if len(r.Data) != 1024 {
			t.Fatalf("stored %d bytes, want exactly 1024", len(r.Data))
		}
	}
}

// sequenceReader yields the given blocks, then falls back to real randomness.
type sequenceReader struct {
	mu     sync.Mutex
	blocks [][]byte
	rest   io.Reader
}

func (r *sequenceReader) Read(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.blocks) > 0 {
		n := copy(p, r.blocks[0])
		r.blocks = r.blocks[1:]
		return n, nil
	}
	return r.rest.Read(p)
}

func TestIDCollisionDrawsAnotherID(t *testing.T) {
	same := bytes.Repeat([]byte{7}, 32)
	rnd := &sequenceReader{blocks: [][]byte{same, same}, rest: defaultConfig().rand}
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}),
		func(c *config) error { c.rand = rnd; return nil })
	a, b := e.client(), e.client()
	a.body("/count")
	a.body("/count")
	b.body("/count") // draws the same id first: Create says ErrExists, a new id is drawn
	if a.cookie(DefaultCookieName) == b.cookie(DefaultCookieName) {
		t.Fatal("two clients share an id")
	}
	if got := a.body("/count"); got != "3" {
		t.Fatalf("the first session was overwritten: %q", got)
	}
	if e.store.count("Create") != 3 {
		t.Fatalf("%d creates, want 3 (one retry)", e.store.count("Create"))
	}
}

func TestUndecodableRecordGivesFreshSession(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	key := storeKey(c.cookie(DefaultCookieName))
	for _, garbage := range []string{"", "garbage", `{"v":1,"ip":"x","data":{"count":`, `{"v":2,"ip":"x","data":{}}`,
		"\x80\x03}q\x00(X\x05\x00\x00\x00countq\x01K\x01u.", `{"v":1,"ip":"x"}`, `[1,2]`} {
		rec, _ := e.store.get(key)
		rec.Data = []byte(garbage)
		e.store.put(key, rec)
		resp, body := c.do("/count")
		if resp.StatusCode != 200 || body != "1" {
			t.Fatalf("stored %q: status %d body %q, want a fresh session", garbage, resp.StatusCode, body)
		}
		if _, ok := e.store.get(key); ok {
			t.Fatalf("stored %q: the undecodable record was kept", garbage)
		}
		key = storeKey(c.cookie(DefaultCookieName))
	}
}

func TestWritesSurviveClientDisconnect(t *testing.T) {
	m, err := New(newMapStore(), WithCleanupInterval(0))
	must(t, err)
	st := m.store.(*mapStore)
	ctx, cancel := context.WithCancel(context.Background())
	h := m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		must(t, FromContext(r.Context()).Set("order", 42))
		cancel() // the client goes away after the handler decided
	}))
	req, _ := http.NewRequestWithContext(ctx, "GET", "/", nil)
	rec := newRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || st.len() != 1 {
		t.Fatalf("status %d, %d records: the save was cancelled with the request", rec.Code, st.len())
	}
}
