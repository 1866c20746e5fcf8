package session

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func TestNewSessionCookieDefaults(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	resp, body := e.rawGet("/count", "")
	if body != "1" {
		t.Fatalf("body %q", body)
	}
	sc := setCookies(resp)
	if len(sc) != 1 {
		t.Fatalf("Set-Cookie = %q, want exactly one", sc)
	}
	parts := strings.Split(sc[0], "; ")
	name, id, _ := strings.Cut(parts[0], "=")
	if name != DefaultCookieName || !idPattern.MatchString(id) {
		t.Fatalf("cookie %q: want %s=<43 base64url chars>", parts[0], DefaultCookieName)
	}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) != 32 {
		t.Fatalf("id does not decode to 32 bytes: %v", err)
	}
	attrs := strings.Join(parts[1:], "; ")
	if attrs != "Path=/; HttpOnly; SameSite=Lax" {
		t.Errorf("attributes = %q, want %q (no Max-Age, Domain or Secure by default)", attrs, "Path=/; HttpOnly; SameSite=Lax")
	}
	if v := resp.Header.Get("Vary"); v != "Cookie" {
		t.Errorf("Vary = %q, want Cookie", v)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "private") {
		t.Errorf("Cache-Control = %q: shared caches may store the Set-Cookie", cc)
	}
	// The store is keyed by SHA-256(id), never by the id.
	sum := sha256.Sum256([]byte(id))
	key := base64.RawURLEncoding.EncodeToString(sum[:])
	if _, ok := e.store.get(key); !ok {
		t.Fatal("no record under base64url(SHA-256(id))")
	}
	for _, k := range e.store.keys {
		if strings.Contains(k, id) {
			t.Fatal("the raw id reached the store as a key")
		}
	}
	for _, r := range e.store.m {
		if strings.Contains(string(r.Data), id) {
			t.Fatal("the raw id is stored in the data")
		}
	}
}

func TestCookieOptions(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}),
		WithCookieName("sid"), WithCookieDomain("example.com"), WithCookiePath("/app"),
		WithSecure(true), WithHTTPOnly(false), WithSameSite(http.SameSiteStrictMode), WithMaxAge(90*time.Minute))
	resp, _ := e.rawGet("/count", "")
	sc := setCookies(resp)
	if len(sc) != 1 {
		t.Fatalf("Set-Cookie = %q", sc)
	}
	_, attrs, _ := strings.Cut(sc[0], "; ")
	if want := "Max-Age=5400; Path=/app; Domain=example.com; Secure; SameSite=Strict"; attrs != want {
		t.Errorf("attributes = %q, want %q", attrs, want)
	}
	if !strings.HasPrefix(sc[0], "sid=") {
		t.Errorf("cookie name: %q", sc[0])
	}
}

func TestPersistentCookieSlidesWhenWrittenOrTouched(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithMaxAge(time.Hour), WithTouchInterval(time.Minute))
	c := e.client()
	c.body("/count")
	resp, _ := c.do("/count") // an Update re-sends the cookie with a fresh Max-Age
	if !hasSetCookie(resp, DefaultCookieName) {
		t.Error("update of a persistent-cookie session did not refresh the cookie")
	}
	resp, _ = c.do("/read") // within the touch interval: nothing to refresh
	if hasSetCookie(resp, DefaultCookieName) {
		t.Error("read within the touch interval re-sent the cookie")
	}
	e.clock.Advance(2 * time.Minute)
	resp, _ = c.do("/read")
	if !hasSetCookie(resp, DefaultCookieName) {
		t.Error("touch of a persistent-cookie session did not refresh the cookie")
	}
}

func TestBrowserSessionCookieNotResent(t *testing.T) {
	// Without Max-Age there is nothing to refresh: an existing session's
	// cookie is not re-sent, which keeps such responses cacheable.
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	resp, _ := c.do("/count")
	if hasSetCookie(resp, DefaultCookieName) {
		t.Errorf("update re-sent the cookie: %q", setCookies(resp))
	}
	if resp.Header.Get("Vary") != "Cookie" {
		t.Error("a response that used the session lacks Vary: Cookie")
	}
}

func TestCacheControlHardening(t *testing.T) {
	for _, tc := range []struct{ handler, want string }{
		{"", `private, no-cache="Set-Cookie"`},
		{"public, max-age=600, s-maxage=600", `private, no-cache="Set-Cookie", max-age=600`},
		{"no-store", "no-store"},
		{"private, max-age=60", "private, max-age=60"},
	} {
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if tc.handler != "" {
				w.Header().Set("Cache-Control", tc.handler)
			}
			must(t, FromContext(r.Context()).Set("x", 1))
		})
		e := newEnv(t, h)
		resp, _ := e.rawGet("/", "")
		if got := resp.Header.Get("Cache-Control"); got != tc.want {
			t.Errorf("handler Cache-Control %q: got %q, want %q", tc.handler, got, tc.want)
		}
	}
}

func TestVaryNotDuplicated(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Add("Vary", "Accept-Encoding, cookie")
		must(t, FromContext(r.Context()).Set("x", 1))
	})
	e := newEnv(t, h)
	resp, _ := e.rawGet("/", "")
	if v := resp.Header.Values("Vary"); len(v) != 1 {
		t.Errorf("Vary = %q, want the handler's single value", v)
	}
}

func TestInvalidOptions(t *testing.T) {
	store := newMapStore()
	for name, opts := range map[string][]Option{
		"SameSiteNoneWithoutSecure": {WithSameSite(http.SameSiteNoneMode)},
		"HostPrefixWithoutSecure":   {WithCookieName("__Host-sid")},
		"HostPrefixWithDomain":      {WithCookieName("__Host-sid"), WithSecure(true), WithCookieDomain("example.com")},
		"SecurePrefixWithoutSecure": {WithCookieName("__Secure-sid")},
		"BadCookieName":             {WithCookieName("a b")},
		"EmptyCookieName":           {WithCookieName("")},
		"BadPath":                   {WithCookiePath("app; evil")},
		"BadDomain":                 {WithCookieDomain("a;b")},
		"ZeroTimeout":               {WithTimeout(0)},
		"TouchNotBelowTimeout":      {WithTimeout(time.Minute), WithTouchInterval(time.Minute)},
		"ShortSecret":               {WithSecretKey([]byte("short"))},
		"ShortVerifyKey":            {WithSecretKey(make([]byte, 32), []byte("short"))},
		"NegativeLifetime":          {WithLifetime(-1)},
		"SubSecondMaxAge":           {WithMaxAge(time.Millisecond)},
		"ZeroMaxData":               {WithMaxDataSize(0)},
		"NilClock":                  {WithClock(nil)},
		"BadSameSite":               {WithSameSite(http.SameSite(42))},
		"UnencodableInitializer":    {WithInitializer(map[string]any{"c": make(chan int)})},
	} {
		if m, err := New(store, opts...); err == nil {
			m.Close()
			t.Errorf("%s: New accepted invalid options", name)
		}
	}
	if _, err := New(nil); err == nil {
		t.Error("New accepted a nil store")
	}
	m, err := New(store, WithSameSite(http.SameSiteNoneMode), WithSecure(true), WithCookieName("__Host-sid"))
	if err != nil {
		t.Errorf("valid options refused: %v", err)
	} else {
		m.Close()
	}
}

// hostileCookies are cookie values that must be treated as no cookie at
// all: a fresh session, and nothing derived from them reaches the store.
func hostileCookies() map[string]string {
	valid := strings.Repeat("A", 43)
	return map[string]string{
		"DotDotSlash":     "../../etc/passwd",
		"Quoted":          `"/etc/password"`,
		"Empty":           "",
		"Huge":            strings.Repeat("a", 8192),
		"InvalidBase64":   strings.Repeat("*", 43),
		"TooShort":        valid[:42],
		"TooLong":         valid + "A",
		"NonCanonical":    valid[:42] + "B", // low bits set in the last character
		"PaddedBase64":    valid[:42] + "=",
		"StdAlphabet":     valid[:41] + "+/",
		"NULByte":         valid[:42] + "\x00",
		"PercentEncoded":  "%2e%2e%2f",
		"SQLInjection":    "x'; DROP TABLE sessions;--",
		"Whitespace":      "   ",
		"UnicodeLookalik": strings.Repeat("А", 43), // Cyrillic A
	}
}

func TestHostileCookiesNeverReachTheStore(t *testing.T) {
	for _, strict := range []bool{false, true} {
		for name, value := range hostileCookies() {
			t.Run(name, func(t *testing.T) {
				e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 5}), WithIgnoreExpiry(!strict))
				var resp *http.Response
				var body string
				if strings.ContainsRune(value, 0) {
					// Go's client and server refuse NUL in headers; hand
					// the request to the middleware directly instead.
					rec := newRecorder()
					req, _ := http.NewRequest("GET", "/count", nil)
					req.Header.Set("Cookie", DefaultCookieName+"="+value)
					e.m.Middleware(counterMux()).ServeHTTP(rec, req)
					resp, body = rec.Result(), rec.Body.String()
				} else {
					resp, body = e.rawGet("/count", DefaultCookieName+"="+value)
				}
				if resp.StatusCode != 200 || body != "6" {
					t.Fatalf("status %d body %q, want a fresh session (200, 6)", resp.StatusCode, body)
				}
				if n := e.store.count("Load"); n != 0 {
					t.Fatalf("a malformed cookie caused %d store loads", n)
				}
				if got := cookieValueFrom(resp.Header, DefaultCookieName); got == value || !idPattern.MatchString(got) {
					t.Fatalf("issued cookie %q: want a new server id", got)
				}
			})
		}
	}
}

func TestUnknownIDIsNeverAdopted(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	planted := base64.RawURLEncoding.EncodeToString(make([]byte, 32)) // well-formed, never issued
	resp, body := e.rawGet("/count", DefaultCookieName+"="+planted)
	if body != "1" {
		t.Fatalf("body %q", body)
	}
	issued := cookieValueFrom(resp.Header, DefaultCookieName)
	if issued == planted || issued == "" {
		t.Fatalf("issued %q: the planted id was adopted", issued)
	}
	// The lookup used the hash, never the planted id itself.
	for _, k := range e.store.keys {
		if k == planted {
			t.Fatal("the planted id reached the store as a key")
		}
	}
	if _, ok := e.store.get(storeKey(planted)); ok {
		t.Fatal("a record exists under the planted id")
	}
}

func TestDuplicateCookieNames(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	c.body("/count")
	id := c.cookie(DefaultCookieName)
	// A malformed cookie of the same name first must not shadow the good one.
	_, body := e.rawGet("/count", DefaultCookieName+"=bad; other=1; "+DefaultCookieName+"="+id)
	if body != "3" {
		t.Fatalf("body %q, want 3 (the valid cookie after a malformed one)", body)
	}
	// Quoted values are unquoted, as RFC 6265 allows.
	_, body = e.rawGet("/count", DefaultCookieName+`="`+id+`"`)
	if body != "4" {
		t.Fatalf("quoted cookie: body %q, want 4", body)
	}
}

func TestCaseChangedIDIsUnknown(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	id := c.cookie(DefaultCookieName)
	swapped := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 32
		case 'A' <= r && r <= 'Z':
			return r + 32
		}
		return r
	}, id)
	if _, body := e.rawGet("/count", DefaultCookieName+"="+swapped); body != "1" {
		t.Fatalf("case-swapped id continued the session (body %q)", body)
	}
}

func TestSignedCookies(t *testing.T) {
	key1 := []byte(strings.Repeat("k", 32))
	key2 := []byte(strings.Repeat("n", 32))
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecretKey(key1))
	c := e.client()
	c.body("/count")
	signed := c.cookie(DefaultCookieName)
	id, sig, ok := strings.Cut(signed, ".")
	if !ok || !idPattern.MatchString(id) || len(sig) != 43 {
		t.Fatalf("signed cookie %q: want <id>.<43-char MAC>", signed)
	}
	if got := c.body("/count"); got != "2" {
		t.Fatalf("signed session did not continue: %q", got)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	otherSig := newSigner([][]byte{key2}).sign(DefaultCookieName, id)
	forgeries := map[string]string{
		"Unsigned":        id,
		"TrailingBytes":   signed + "A",
		"FlippedMACBit":   flip(signed, len(signed)-5),
		"FlippedIDBit":    flip(signed, 3),
		"TruncatedMAC":    signed[:len(signed)-1],
		"EmptyMAC":        id + ".",
		"OtherKey":        otherSig,
		"OtherCookieName": newSigner([][]byte{key1}).sign("other", id),
		"NonCanonicalMAC": signed[:len(signed)-1] + "B",
	}
	for name, v := range forgeries {
		e.store.resetCounts()
		_, body := e.rawGet("/count", DefaultCookieName+"="+v)
		if body != "1" {
			t.Errorf("%s: forged cookie accepted (body %q)", name, body)
		}
		if n := e.store.count("Load"); n != 0 {
			t.Errorf("%s: a forged cookie caused %d store loads", name, n)
		}
	}

	// Rotation: a manager that signs with key2 and verifies key1 accepts
	// the old cookie and re-signs new ones with key2 only.
	m2, err := New(e.store, WithClock(e.clock.Now), WithCleanupInterval(0), WithInitializer(map[string]any{"count": 0}),
		WithSecretKey(key2, key1))
	must(t, err)
	defer m2.Close()
	rec := newRecorder()
	req, _ := http.NewRequest("GET", "/count", nil)
	req.Header.Set("Cookie", DefaultCookieName+"="+signed)
	m2.Middleware(counterMux()).ServeHTTP(rec, req)
	if rec.Body.String() != "3" {
		t.Fatalf("after rotation the old-key cookie was refused: body %q", rec.Body.String())
	}
	rec = newRecorder()
	req, _ = http.NewRequest("GET", "/count", nil)
	m2.Middleware(counterMux()).ServeHTTP(rec, req)
	fresh := cookieValueFrom(rec.Header(), DefaultCookieName)
	freshID, _, _ := strings.Cut(fresh, ".")
	if fresh != newSigner([][]byte{key2}).sign(DefaultCookieName, freshID) {
		t.Fatalf("new cookie %q is not signed with the new key", fresh)
	}
}

func TestIDsAreUniqueAndWellFormed(t *testing.T) {
	m, err := New(newMapStore(), WithCleanupInterval(0))
	must(t, err)
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		id, err := newID(m.cfg.rand)
		must(t, err)
		if !canonicalB64(id, idBytes) {
			t.Fatalf("id %q is not canonical base64url of 32 bytes", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id after %d draws", i)
		}
		seen[id] = true
	}
}
