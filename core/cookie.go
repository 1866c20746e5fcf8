package session

import (
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// maxCookieValue bounds what is even looked at; anything longer is not ours.
const maxCookieValue = signedLen

// cookieIDs are the valid session ids a request presented, in order: the
// first inline, the rare others (duplicate cookies) in more.
type cookieIDs struct {
	n     int
	first [1]cookieID
	more  []cookieID
}

// maxCookieIDs bounds how many cookies of our name a request may make the
// manager look up: an attacker planting cookies gets no amplification.
const maxCookieIDs = 3

type cookieID struct {
	id     string
	oldKey bool // signed with a verify-only key: re-sign it
}

func (c *cookieIDs) list() []cookieID {
	if c.n <= 1 {
		return c.first[:c.n]
	}
	return c.more
}

func (c *cookieIDs) add(id cookieID) {
	switch c.n {
	case 0:
		c.first[0] = id
	case 1:
		c.more = append(make([]cookieID, 0, maxCookieIDs), c.first[0], id)
	default:
		c.more = append(c.more, id)
	}
	c.n++
}

// readCookie finds the session cookies in r. It reports whether any cookie
// of our name was present (the response may then need to delete it), and
// collects the distinct values that are well-formed ids, correctly signed
// when a secret key is set. Anything else is treated as no cookie and
// never reaches a store.
//
// It scans the Cookie headers in place rather than calling r.CookiesNamed,
// which allocates a *http.Cookie (and its strings) per cookie of our name
// and sanitizes values we then validate again; r.Cookie would return only
// the first cookie of the name. BenchmarkReadCookie compares the two.
func (m *Manager) readCookie(r *http.Request, ids *cookieIDs) (present bool) {
	name := m.cfg.cookie.name
	for _, line := range r.Header["Cookie"] {
		for len(line) > 0 {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimSpace(part)
			k, v, ok := strings.Cut(part, "=")
			if !ok || k != name {
				continue
			}
			present = true
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			id, oldKey, ok := m.parseCookieValue(v)
			if !ok || ids.n == maxCookieIDs || slices.ContainsFunc(ids.list(), func(c cookieID) bool { return c.id == id }) {
				continue
			}
			ids.add(cookieID{id, oldKey})
		}
	}
	return present
}

// parseCookieValue validates a cookie value strictly (length, alphabet,
// canonical encoding, signature) and returns the id it carries, and
// whether a verify-only key signed it.
func (m *Manager) parseCookieValue(v string) (id string, oldKey, ok bool) {
	if len(v) > maxCookieValue {
		return "", false, false
	}
	if m.signer == nil {
		return v, false, canonicalB64(v, idBytes)
	}
	if len(v) != signedLen || v[idLen] != '.' {
		return "", false, false
	}
	id, sig := v[:idLen], v[idLen+1:]
	if !canonicalB64(id, idBytes) {
		return "", false, false
	}
	switch m.signer.verify(m.cfg.cookie.name, id, sig) {
	case signedCurrent:
		return id, false, true
	case signedOld:
		return id, true, true
	}
	return "", false, false
}

// cookieValue is what the cookie carries for id.
func (m *Manager) cookieValue(id string) string {
	if m.signer == nil {
		return id
	}
	return m.signer.sign(m.cfg.cookie.name, id)
}

// writeCookie sets the session cookie for id and the cache headers that
// keep shared caches from storing it.
func (m *Manager) writeCookie(h http.Header, id string, maxAge time.Duration) {
	c := &m.cfg.cookie
	var b strings.Builder
	b.Grow(len(c.name) + signedLen + 64 + len(c.path) + len(c.domain))
	b.WriteString(c.name)
	b.WriteByte('=')
	b.WriteString(m.cookieValue(id))
	if maxAge > 0 {
		b.WriteString("; Max-Age=")
		b.WriteString(strconv.FormatInt(int64(maxAge/time.Second), 10))
	}
	m.writeAttrs(&b)
	h["Set-Cookie"] = append(h["Set-Cookie"], b.String())
	forbidSharedCaching(h)
}

// writeDeletionCookie tells the browser to drop the session cookie.
func (m *Manager) writeDeletionCookie(h http.Header) {
	var b strings.Builder
	b.WriteString(m.cfg.cookie.name)
	b.WriteString("=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT")
	m.writeAttrs(&b)
	h.Add("Set-Cookie", b.String())
	forbidSharedCaching(h)
}

func (m *Manager) writeAttrs(b *strings.Builder) {
	c := &m.cfg.cookie
	b.WriteString("; Path=")
	b.WriteString(c.path)
	if c.domain != "" {
		b.WriteString("; Domain=")
		b.WriteString(c.domain)
	}
	if c.httpOnly {
		b.WriteString("; HttpOnly")
	}
	if c.secure {
		b.WriteString("; Secure")
	}
	switch c.sameSite {
	case http.SameSiteLaxMode:
		b.WriteString("; SameSite=Lax")
	case http.SameSiteStrictMode:
		b.WriteString("; SameSite=Strict")
	case http.SameSiteNoneMode:
		b.WriteString("; SameSite=None")
	}
	if c.partitioned {
		b.WriteString("; Partitioned")
	}
}

const privateNoCacheSetCookie = `private, no-cache="Set-Cookie"`

// forbidSharedCaching keeps shared caches from storing a response that sets
// the session cookie: otherwise a cached page could hand one user's cookie
// to everybody (Django CVE-2026-35192). "private" forbids shared caches to
// store the response at all; no-cache="Set-Cookie" is the narrower form for
// caches that honour it. A handler's own "no-store" or "private" is kept.
func forbidSharedCaching(h http.Header) {
	addVary(h)
	cc := h.Get("Cache-Control")
	if cc == "" {
		h["Cache-Control"] = []string{privateNoCacheSetCookie}
		return
	}
	if hasDirective(cc, "no-store") || hasDirective(cc, "private") {
		return
	}
	var kept []string
	for _, d := range strings.Split(cc, ",") {
		d = strings.TrimSpace(d)
		name, _, _ := strings.Cut(d, "=")
		if d == "" || strings.EqualFold(name, "public") || strings.EqualFold(name, "s-maxage") {
			continue
		}
		kept = append(kept, d)
	}
	h.Set("Cache-Control", strings.Join(append([]string{"private", `no-cache="Set-Cookie"`}, kept...), ", "))
}

// addVary adds "Cookie" to Vary unless it is there already: the response
// depends on the session cookie.
func addVary(h http.Header) {
	for _, v := range h["Vary"] {
		for v != "" {
			var f string
			f, v, _ = strings.Cut(v, ",")
			f = strings.TrimSpace(f)
			if f == "*" || strings.EqualFold(f, "Cookie") {
				return
			}
		}
	}
	h["Vary"] = append(h["Vary"], "Cookie")
}

func hasDirective(cc, name string) bool {
	for cc != "" {
		var d string
		d, cc, _ = strings.Cut(cc, ",")
		d, _, _ = strings.Cut(strings.TrimSpace(d), "=")
		if strings.EqualFold(d, name) {
			return true
		}
	}
	return false
}
