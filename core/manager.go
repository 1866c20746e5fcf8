package session

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

// ErrCommitted reports a session change made after the response was
// committed (its headers sent). Such a change cannot be saved reliably,
// because the cookie rides on the headers; the method that tried it returns
// this error, and nothing else reports it.
var ErrCommitted = errors.New("session: changed after the response was committed")

// ErrNoValue is returned by Get for a key the session does not hold.
var ErrNoValue = errors.New("session: no such value")

// ErrNoSession is returned by the methods of a nil *Session, which is what
// FromContext gives when no session middleware handled the request.
var ErrNoSession = errors.New("session: no session in context (is the middleware installed?)")

// Manager loads sessions from a Store before each request and saves them
// after it. Create one with New, install its Middleware, and reach each
// request's session with FromContext. A Manager is safe for concurrent use.
type Manager struct {
	store  Store
	cfg    config
	slots  saveSlots
	signer *signer
	eager  bool // load before the handler runs (strict expiry or IP check)

	stopOnce sync.Once
	stop     context.CancelFunc
	done     chan struct{}
}

// New returns a Manager over store, configured by opts. It starts the
// background cleanup (see WithCleanupInterval); call Close to stop it.
func New(store Store, opts ...Option) (*Manager, error) {
	if store == nil {
		return nil, errors.New("session: nil store")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	m := &Manager{
		store: store,
		cfg:   cfg,
		eager: !cfg.ignoreExpiry || !cfg.ignoreChangeIP,
		done:  make(chan struct{}),
	}
	if len(cfg.secretKeys) > 0 {
		m.signer = newSigner(cfg.secretKeys)
	}
	if m.cfg.errorHandler == nil {
		m.cfg.errorHandler = m.defaultErrorHandler
	}
	if m.cfg.expiredHandler == nil {
		m.cfg.expiredHandler = http.HandlerFunc(m.defaultExpiredHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m.stop = cancel
	if cfg.cleanupInterval > 0 {
		go m.cleanupLoop(ctx)
	} else {
		close(m.done)
	}
	return m, nil
}

// Close stops the background cleanup and waits for a run in progress to
// end. It does not close the store, which belongs to the caller. Requests
// keep being served after Close. Close is idempotent.
func (m *Manager) Close() error {
	m.stopOnce.Do(m.stop)
	<-m.done
	return nil
}

// Cleanup deletes from the store every session idle for longer than the
// timeout and returns how many it deleted. The background cleanup calls it;
// call it yourself when that is turned off.
func (m *Manager) Cleanup(ctx context.Context) (int, error) {
	return m.store.Cleanup(ctx, m.cfg.now().Add(-m.cfg.timeout))
}

func (m *Manager) cleanupLoop(ctx context.Context) {
	defer close(m.done)
	t := time.NewTimer(jitter(m.cfg.cleanupInterval))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n, err := m.Cleanup(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			m.log().Error("session: cleanup failed", "err", err)
		case n > 0:
			m.log().Debug("session: cleanup", "deleted", n)
		}
		t.Reset(jitter(m.cfg.cleanupInterval))
	}
}

// jitter spreads d by ±10% so servers sharing a store do not clean in step.
func jitter(d time.Duration) time.Duration {
	spread := int64(d / 5)
	if spread <= 0 {
		return d
	}
	return d - d/10 + time.Duration(rand.Int64N(spread))
}

func (m *Manager) log() *slog.Logger {
	if m.cfg.logger != nil {
		return m.cfg.logger
	}
	return slog.Default()
}

func (m *Manager) defaultErrorHandler(w http.ResponseWriter, r *http.Request, err error) {
	m.log().ErrorContext(r.Context(), "session error", "err", err, "method", r.Method, "path", r.URL.Path)
	code := StatusCode(err)
	http.Error(w, http.StatusText(code), code)
}

func (m *Manager) defaultExpiredHandler(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, m.cfg.expiredMessage)
}

// Middleware returns next wrapped so that each request has a session in its
// context. The session is loaded on first use (or before next runs, when
// WithIgnoreExpiry(false) or WithIgnoreChangeIP(false) need it decided
// first) and saved when the response is committed: at the first
// WriteHeader, Write, Flush or ReadFrom, or when next returns without
// writing.
func (m *Manager) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.serve(next, w, r)
	})
}

func (m *Manager) serve(next http.Handler, w http.ResponseWriter, r *http.Request) {
	s := &Session{m: m}
	s.hadCookie = m.readCookie(r, &s.cookies)
	if parent, ok := r.Context().Value(ctxKey{}).(*Session); ok {
		s.parent = parent
	}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, s))
	s.req = r
	s.w.ResponseWriter = w
	s.w.s = s

	if m.eager && s.cookies.n > 0 {
		s.mu.Lock()
		s.load()
		rejected, err := s.rejected, s.err
		s.mu.Unlock()
		if err != nil {
			m.cfg.errorHandler(w, r, err)
			return
		}
		if rejected {
			m.writeDeletionCookie(w.Header())
			m.cfg.expiredHandler.ServeHTTP(w, r)
			return
		}
	}

	next.ServeHTTP(&s.w, r)

	if !s.w.committed {
		s.w.commit()
	}
}

type ctxKey struct{}

// FromContext returns the session that the innermost session middleware
// put in ctx, or nil if there is none. Every method of a nil *Session
// returns ErrNoSession.
func FromContext(ctx context.Context) *Session {
	s, _ := ctx.Value(ctxKey{}).(*Session)
	return s
}

// FromContext returns the session of m in ctx, for applications that stack
// several managers (say, different cookies for different purposes). It
// returns nil if m's middleware did not handle the request.
func (m *Manager) FromContext(ctx context.Context) *Session {
	for s := FromContext(ctx); s != nil; s = s.parent {
		if s.m == m {
			return s
		}
	}
	return nil
}

// detached is the parent of the context of store writes: the request's
// values, but not its cancellation. Once the handler has decided to change
// a session, the change is saved even if the client has gone away
// meanwhile; the store timeout still bounds it (see saveCtx). It is
// context.WithoutCancel, kept inside the Session to save an allocation.
type detached struct{ context.Context }

func (detached) Deadline() (time.Time, bool) { return time.Time{}, false }
func (detached) Done() <-chan struct{}       { return nil }
func (detached) Err() error                  { return nil }

// StatusCode is the HTTP status the default error handler answers a
// session error with: 409 Conflict for a save that another request's
// change or kill made impossible (ErrConflict), 503 Service Unavailable for
// a store that did not answer in time (context.DeadlineExceeded), 500
// otherwise. Custom error handlers may use it.
func StatusCode(err error) int {
	switch {
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
