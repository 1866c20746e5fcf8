package bench

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"
	session "github.com/websession/websession/core"
)

// lib is what a scenario's handler needs from a session library: the
// handlers below are written once against it, so every library runs the
// same application code and only its own session machinery differs.
type lib interface {
	// wrap installs the library around h: its middleware, if it has one.
	wrap(h http.Handler) http.Handler
	// getInt reads key from the request's session; ok is false if absent.
	getInt(r *http.Request, key string) (n int, ok bool, err error)
	// putInt stores v under key in the request's session. It is called
	// before the response is written, as every library requires.
	putInt(w http.ResponseWriter, r *http.Request, key string, v int) error
}

// ours is websession: its Manager's middleware, values through Get and Set.
type ours struct{ m *session.Manager }

func (o ours) wrap(h http.Handler) http.Handler { return o.m.Middleware(h) }

func (ours) getInt(r *http.Request, key string) (int, bool, error) {
	n, err := session.Get[int](session.FromContext(r.Context()), key)
	if errors.Is(err, session.ErrNoValue) {
		return 0, false, nil
	}
	return n, err == nil, err
}

func (ours) putInt(_ http.ResponseWriter, r *http.Request, key string, v int) error {
	return session.FromContext(r.Context()).Set(key, v)
}

// scsLib is alexedwards/scs: LoadAndSave, values through Get and Put.
type scsLib struct{ sm *scs.SessionManager }

func (s scsLib) wrap(h http.Handler) http.Handler { return s.sm.LoadAndSave(h) }

func (s scsLib) getInt(r *http.Request, key string) (int, bool, error) {
	n, ok := s.sm.Get(r.Context(), key).(int)
	return n, ok, nil
}

func (s scsLib) putInt(_ http.ResponseWriter, r *http.Request, key string, v int) error {
	s.sm.Put(r.Context(), key, v)
	return nil
}

// gorillaLib is gorilla/sessions, which has no middleware: the handler gets
// the session from the store and saves it explicitly.
type gorillaLib struct {
	store sessions.Store
	name  string
}

// wrap gives gorilla a request of its own. gorilla keeps the request's
// sessions in a registry that sessions.GetRegistry stores by overwriting
// *r, so a request value reused across iterations would carry the first
// iteration's decoded session into all later ones and skip the work. A
// server hands every request a new *http.Request anyway; the shallow copy
// here (one allocation, a few tens of ns) stands for that and is charged to
// gorilla alone.
func (g gorillaLib) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(r.Context()))
	})
}

func (g gorillaLib) getInt(r *http.Request, key string) (int, bool, error) {
	s, err := g.store.Get(r, g.name)
	if err != nil {
		return 0, false, err
	}
	n, ok := s.Values[key].(int)
	return n, ok, nil
}

func (g gorillaLib) putInt(w http.ResponseWriter, r *http.Request, key string, v int) error {
	s, err := g.store.Get(r, g.name)
	if err != nil && !s.IsNew {
		return err
	}
	s.Values[key] = v
	// Through the store we were given (which counts calls), not s.Save,
	// which would reach the inner store directly.
	return g.store.Save(r, w, s)
}

// noLib is the baseline without any session library.
type noLib struct{}

func (noLib) wrap(h http.Handler) http.Handler { return h }

func (noLib) getInt(*http.Request, string) (int, bool, error) {
	return 0, false, errors.New("no session library")
}

func (noLib) putInt(http.ResponseWriter, *http.Request, string, int) error {
	return errors.New("no session library")
}

// The scenarios' handlers. Each writes its result as the body, which the
// benchmarks check.

// readHandler is ReadOnly: one value read from an existing session.
func readHandler(l lib) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, ok, err := l.getInt(r, "count")
		if err == nil && !ok {
			err = errors.New(`no "count" in the session`)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(strconv.AppendInt(nil, int64(n), 10))
	})
}

// counterHandler is web.py's counter: count incremented and shown.
func counterHandler(l lib) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _, err := l.getInt(r, "count")
		if err == nil {
			err = l.putInt(w, r, "count", n+1)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(strconv.AppendInt(nil, int64(n+1), 10))
	})
}

// newHandler puts one value into the session of a request without a
// cookie, which creates the session.
func newHandler(l lib) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := l.putInt(w, r, "count", 1); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write(one)
	})
}

// untouchedHandler never looks at the session.
var untouchedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write(okBody) })

var (
	one    = []byte("1")
	okBody = []byte("ok")
)

// respWriter is a ResponseWriter that costs next to nothing and is reused
// across iterations, so that the benchmarks measure the libraries, not
// httptest.ResponseRecorder.
type respWriter struct {
	h      http.Header
	status int
	body   []byte
}

func newRespWriter() *respWriter { return &respWriter{h: http.Header{}, body: make([]byte, 0, 256)} }

func (w *respWriter) Header() http.Header { return w.h }

func (w *respWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *respWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.body = append(w.body, p...)
	return len(p), nil
}

func (w *respWriter) reset() {
	clear(w.h)
	w.status = 0
	w.body = w.body[:0]
}

// check returns an error unless the response is a 200 with body want.
func (w *respWriter) check(want string) error {
	if w.status != http.StatusOK || string(w.body) != want {
		return fmt.Errorf("response %d %q, want 200 %q", w.status, w.body, want)
	}
	return nil
}

// sessionCookie returns the name=value of the response's session cookie.
func (w *respWriter) sessionCookie() (string, error) {
	for _, c := range w.h.Values("Set-Cookie") {
		nv, _, _ := strings.Cut(c, ";")
		if name, value, ok := strings.Cut(nv, "="); ok && name != "" && value != "" {
			return nv, nil
		}
	}
	return "", fmt.Errorf("no session cookie in the response (%d %q, headers %v)", w.status, w.body, w.h)
}

// follow does what a browser does with the response's session cookie: the
// next request r carries it. A cookie store (gorilla's CookieStore) needs
// it to see its own writes; other libraries re-send the same id or nothing.
func (w *respWriter) follow(r *http.Request) {
	if sc := w.h["Set-Cookie"]; len(sc) > 0 {
		nv, _, _ := strings.Cut(sc[0], ";")
		r.Header["Cookie"][0] = nv
	}
}

// newRequest returns a GET / carrying cookie (name=value) if not empty.
func newRequest(cookie string) *http.Request {
	r, err := http.NewRequest(http.MethodGet, "http://bench.example/", nil)
	if err != nil {
		panic(err) // constant arguments
	}
	r.RemoteAddr = "192.0.2.1:43210"
	if cookie != "" {
		r.Header.Set("Cookie", cookie)
	}
	return r
}
