package session

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
)

// Defaults of the options. Each is documented on its option.
const (
	DefaultCookieName      = "session_id"
	DefaultTimeout         = 24 * time.Hour
	DefaultTouchInterval   = time.Minute
	DefaultCleanupInterval = 5 * time.Minute
	DefaultMaxDataSize     = 1 << 20
	DefaultExpiredMessage  = "Session expired"
	DefaultStoreTimeout    = 5 * time.Second
)

// minSecretKeyLen is the shortest secret accepted by WithSecretKey: an
// HMAC key shorter than its 256-bit output weakens it.
const minSecretKeyLen = 32

// An Option configures a Manager. Options are applied in order by New, which
// reports the first invalid one.
type Option func(*config) error

type config struct {
	cookie          cookieConfig
	timeout         time.Duration
	lifetime        time.Duration
	touchInterval   time.Duration
	touchSet        bool
	ignoreExpiry    bool
	ignoreChangeIP  bool
	secretKeys      [][]byte
	expiredMessage  string
	expiredHandler  http.Handler
	errorHandler    func(http.ResponseWriter, *http.Request, error)
	initializer     map[string]json.RawMessage
	initializerFunc func(*http.Request) (map[string]any, error)
	clientIP        func(*http.Request) string
	maxDataSize     int
	cleanupInterval time.Duration
	now             func() time.Time
	logger          *slog.Logger
	storeTimeout    time.Duration
	rand            io.Reader
}

type cookieConfig struct {
	name        string
	domain      string
	path        string
	secure      bool
	httpOnly    bool
	sameSite    http.SameSite
	partitioned bool
	maxAge      time.Duration
}

func defaultConfig() config {
	return config{
		cookie: cookieConfig{
			name:     DefaultCookieName,
			path:     "/",
			httpOnly: true,
			sameSite: http.SameSiteLaxMode,
		},
		timeout:         DefaultTimeout,
		ignoreExpiry:    true,
		ignoreChangeIP:  true,
		expiredMessage:  DefaultExpiredMessage,
		clientIP:        RemoteIP,
		maxDataSize:     DefaultMaxDataSize,
		cleanupInterval: DefaultCleanupInterval,
		now:             time.Now,
		storeTimeout:    DefaultStoreTimeout,
		rand:            rand.Reader,
	}
}

// validate checks the options against each other once all are applied and
// fills in the defaults that depend on others.
func (c *config) validate() error {
	if !c.touchSet {
		c.touchInterval = min(DefaultTouchInterval, c.timeout/10)
	}
	if c.touchInterval >= c.timeout {
		return fmt.Errorf("session: touch interval %v must be shorter than the timeout %v", c.touchInterval, c.timeout)
	}
	if c.cookie.sameSite == http.SameSiteNoneMode && !c.cookie.secure {
		return errors.New("session: SameSite=None requires Secure (browsers reject it otherwise)")
	}
	if c.cookie.partitioned && !c.cookie.secure {
		return errors.New("session: a Partitioned cookie requires Secure (browsers reject it otherwise)")
	}
	if strings.HasPrefix(c.cookie.name, "__Host-") && (!c.cookie.secure || c.cookie.domain != "" || c.cookie.path != "/") {
		return errors.New("session: a __Host- cookie needs Secure, no Domain and Path=/")
	}
	if strings.HasPrefix(c.cookie.name, "__Secure-") && !c.cookie.secure {
		return errors.New("session: a __Secure- cookie needs Secure")
	}
	return nil
}

// WithCookieName sets the cookie's name (web.py: cookie_name). Default
// DefaultCookieName.
func WithCookieName(name string) Option {
	return func(c *config) error {
		if name == "" || (&http.Cookie{Name: name}).Valid() != nil {
			return fmt.Errorf("session: invalid cookie name %q", name)
		}
		c.cookie.name = name
		return nil
	}
}

// WithCookieDomain sets the cookie's Domain attribute (web.py:
// cookie_domain). Default: none, so the cookie goes to the exact host only.
func WithCookieDomain(domain string) Option {
	return func(c *config) error {
		if strings.ContainsAny(domain, "; \t\r\n\"") {
			return fmt.Errorf("session: invalid cookie domain %q", domain)
		}
		c.cookie.domain = domain
		return nil
	}
}

// WithCookiePath sets the cookie's Path attribute (web.py: cookie_path).
// Default "/".
func WithCookiePath(path string) Option {
	return func(c *config) error {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(path, "; \t\r\n\"") {
			return fmt.Errorf("session: invalid cookie path %q: must start with / and hold no ; or spaces", path)
		}
		c.cookie.path = path
		return nil
	}
}

// WithSecure sets the cookie's Secure attribute (web.py: secure). Default
// false so that plain-HTTP development works; set it in production.
func WithSecure(secure bool) Option {
	return func(c *config) error { c.cookie.secure = secure; return nil }
}

// WithHTTPOnly sets the cookie's HttpOnly attribute (web.py: httponly).
// Default true: scripts cannot read the session cookie.
func WithHTTPOnly(httpOnly bool) Option {
	return func(c *config) error { c.cookie.httpOnly = httpOnly; return nil }
}

// WithSameSite sets the cookie's SameSite attribute (web.py: samesite).
// Default http.SameSiteLaxMode. http.SameSiteDefaultMode omits the
// attribute; http.SameSiteNoneMode requires WithSecure(true).
func WithSameSite(mode http.SameSite) Option {
	return func(c *config) error {
		switch mode {
		case http.SameSiteDefaultMode, http.SameSiteLaxMode, http.SameSiteStrictMode, http.SameSiteNoneMode:
			c.cookie.sameSite = mode
			return nil
		}
		return fmt.Errorf("session: invalid SameSite mode %d", mode)
	}
}

// WithPartitioned sets the cookie's Partitioned attribute (CHIPS): for an
// application embedded in other sites (an iframe), whose cookies browsers
// that block third-party cookies keep only partitioned by the top-level
// site. It requires WithSecure(true), and usually WithSameSite(None).
// Default false.
func WithPartitioned(partitioned bool) Option {
	return func(c *config) error { c.cookie.partitioned = partitioned; return nil }
}

// WithMaxAge makes the cookie persistent with the given Max-Age, rounded
// down to whole seconds; it is re-sent whenever the session is written or
// touched, so it slides with activity. Default 0: a browser-session cookie,
// as in web.py, which the browser drops when it closes. The server-side
// timeout applies either way.
func WithMaxAge(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 || (d > 0 && d < time.Second) {
			return fmt.Errorf("session: invalid cookie max-age %v: 0 or at least 1s", d)
		}
		c.cookie.maxAge = d
		return nil
	}
}

// WithTimeout sets the idle limit (web.py: timeout): a session not accessed
// for longer than d is expired, checked on every load whether or not a
// cleanup ran. Default DefaultTimeout (24h, web.py's 86400 seconds).
func WithTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("session: timeout must be positive, got %v", d)
		}
		c.timeout = d
		return nil
	}
}

// WithLifetime sets an absolute lifetime: a session older than d since its
// creation (or its last Regenerate) is expired however active it is.
// Default 0: no absolute limit, as in web.py. OWASP recommends one.
func WithLifetime(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("session: lifetime must not be negative, got %v", d)
		}
		c.lifetime = d
		return nil
	}
}

// WithTouchInterval sets how stale a session's recorded access time may get
// before a read-only request writes a new one. A request that loads a
// session but changes nothing costs no store write when the stored ATime is
// younger than d; otherwise it costs one Touch (an ATime-only write).
//
// The price is accuracy: the stored ATime may lag the true last access by up
// to d, so a session can expire up to d before it has really been idle for
// the timeout. Default: the smaller of DefaultTouchInterval (1 minute) and a
// tenth of the timeout. 0 touches on every read-only request. It must be
// shorter than the timeout.
func WithTouchInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("session: touch interval must not be negative, got %v", d)
		}
		c.touchInterval, c.touchSet = d, true
		return nil
	}
}

// WithIgnoreExpiry chooses what happens when a request presents a
// well-formed cookie whose session is expired, killed or unknown (web.py:
// ignore_expiry). true (the default): the request silently gets a new
// session. false: it gets the expired response (see WithExpiredHandler) and
// a deletion cookie, and the handler does not run.
//
// With false the session is loaded before the handler runs whenever the
// request carries a session cookie, since the decision must come first.
func WithIgnoreExpiry(ignore bool) Option {
	return func(c *config) error { c.ignoreExpiry = ignore; return nil }
}

// WithIgnoreChangeIP chooses whether a session may be used from another
// client IP than the one that created it (web.py: ignore_change_ip). true
// (the default): yes. false: such a request gets the expired response; the
// session itself stays valid for its original IP.
//
// With false the session is loaded before the handler runs whenever the
// request carries a session cookie. See WithClientIP for proxies.
func WithIgnoreChangeIP(ignore bool) Option {
	return func(c *config) error { c.ignoreChangeIP = ignore; return nil }
}

// WithSecretKey signs cookies with HMAC-SHA256 under key (web.py:
// secret_key, which there only salted the id). A cookie whose signature
// does not verify, or that carries none, is treated as no cookie without
// any store lookup. verifyOnly keys are accepted for verification but never
// sign: to rotate, make the new key the signing key and keep the old one
// here until the longest session has ended. Keys must be at least 32 bytes.
func WithSecretKey(key []byte, verifyOnly ...[]byte) Option {
	return func(c *config) error {
		keys := append([][]byte{key}, verifyOnly...)
		for i, k := range keys {
			if len(k) < minSecretKeyLen {
				return fmt.Errorf("session: secret key %d is %d bytes, need at least %d", i, len(k), minSecretKeyLen)
			}
		}
		c.secretKeys = keys
		return nil
	}
}

// WithExpiredMessage sets the body of the default expired response (web.py:
// expired_message). Default DefaultExpiredMessage.
func WithExpiredMessage(msg string) Option {
	return func(c *config) error { c.expiredMessage = msg; return nil }
}

// WithExpiredHandler replaces the expired response. It runs instead of the
// application's handler when WithIgnoreExpiry(false) or
// WithIgnoreChangeIP(false) rejects a request; the deletion cookie is
// already set on w. The default writes status 200 (as web.py does) with the
// expired message as plain text and Cache-Control: no-store.
func WithExpiredHandler(h http.Handler) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("session: nil expired handler")
		}
		c.expiredHandler = h
		return nil
	}
}

// WithErrorHandler replaces the handler of the session errors that no
// application code could see: a save that fails when the response is
// committed (a store error, a conflict with another request, a store
// timeout, data over the size limit), and a load that fails before the
// application's handler runs (WithIgnoreExpiry(false) or
// WithIgnoreChangeIP(false) load first). Its response replaces the
// application's, which has not started. Errors that Session methods and
// Update return are their caller's alone: the middleware never reports
// them again, so each error is logged once, by its one owner. The default
// logs with the manager's logger and responds with StatusCode(err).
func WithErrorHandler(h func(w http.ResponseWriter, r *http.Request, err error)) Option {
	return func(c *config) error {
		if h == nil {
			return errors.New("session: nil error handler")
		}
		c.errorHandler = h
		return nil
	}
}

// WithInitializer sets the values every new session starts with (web.py:
// initializer as a dict). The map is encoded once, here, so each new
// session gets its own deep copy and later changes to m have no effect.
// Initial values alone do not make a session worth storing: a new session
// is stored only once a request writes to it. Loaded sessions are never
// re-initialized.
func WithInitializer(m map[string]any) Option {
	return func(c *config) error {
		enc := make(map[string]json.RawMessage, len(m))
		for k, v := range m {
			b, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("session: initializer value %q: %w", k, err)
			}
			enc[k] = b
		}
		c.initializer = enc
		return nil
	}
}

// WithInitializerFunc sets a function that returns the values of each new
// session (web.py: initializer as a callable). It runs once per new
// session, when the session is first used; an error from it is a session
// error.
func WithInitializerFunc(f func(r *http.Request) (map[string]any, error)) Option {
	return func(c *config) error { c.initializerFunc = f; return nil }
}

// WithClientIP sets how the client IP is found for WithIgnoreChangeIP.
// The default, RemoteIP, uses the connection's address; behind a reverse
// proxy, plug in a function that trusts the proxy's header only when the
// connection comes from the proxy.
func WithClientIP(f func(*http.Request) string) Option {
	return func(c *config) error {
		if f == nil {
			return errors.New("session: nil client IP function")
		}
		c.clientIP = f
		return nil
	}
}

// WithMaxDataSize sets the largest encoded session, in bytes. A save of
// anything larger fails with ErrTooLarge before any store write. Default
// DefaultMaxDataSize (1 MiB).
func WithMaxDataSize(n int) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("session: max data size must be positive, got %d", n)
		}
		c.maxDataSize = n
		return nil
	}
}

// WithCleanupInterval sets how often the manager deletes idle sessions from
// the store (Store.Cleanup with cutoff now − timeout). It runs on a
// goroutine of the manager, never on a request, with ±10% jitter so many
// servers sharing a store spread their runs; Close stops it. d <= 0 turns
// it off (call Manager.Cleanup yourself, or let another server do it).
// Default DefaultCleanupInterval.
func WithCleanupInterval(d time.Duration) Option {
	return func(c *config) error { c.cleanupInterval = d; return nil }
}

// WithClock sets the function the manager reads the time from, for every
// timestamp it hands to a store and every expiry decision, as crypto/tls's
// Config.Time does. Default time.Now. Tests pass a fake clock's Now (the
// conformance module exports one), so that expiry is tested without
// sleeping.
func WithClock(now func() time.Time) Option {
	return func(c *config) error {
		if now == nil {
			return errors.New("session: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithLogger sets the logger for errors and cleanup reports. Default
// slog.Default() at the time of each message.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error { c.logger = l; return nil }
}

// WithStoreTimeout bounds every store call the manager makes: a load runs
// under the request's context and this deadline, a save under a context
// that keeps the request's values, ignores its cancellation (a decided
// change is saved even if the client left), and has this deadline, which
// also bounds the save's retries after version conflicts. A call that
// overruns ends the request with an error wrapping
// context.DeadlineExceeded (default response 503), and releases its
// goroutine and its pool connection; the manager never retries it later.
// (A statement already sent may still run on a database that comes back,
// with drivers that cannot cancel it on the server; saves are
// compare-and-swaps, so such a late write never overwrites a newer one. See
// the package documentation, "Concurrency".)
//
// Default DefaultStoreTimeout (5s): hundreds of times a healthy store's
// latency (well under 10ms for every driver of this project), so only a
// store that has stalled hits it, yet short enough that a stall of the
// database cannot pile up goroutines and connections for the minutes a
// load balancer or a browser may wait. d must be positive.
func WithStoreTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("session: store timeout must be positive, got %v", d)
		}
		c.storeTimeout = d
		return nil
	}
}

// RemoteIP returns the IP of the connection that sent r (r.RemoteAddr
// without its port). It is the default of WithClientIP.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
