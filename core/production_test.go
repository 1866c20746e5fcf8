package session

import (
	"net/http"
	"strings"
	"testing"
)

// TestRotationResignsOnTheNextResponse: a cookie accepted through a
// verify-only key comes back signed with the current key on the next
// response, read-only or not, without a store write; after that the old
// key can be dropped without logging anyone out.
func TestRotationResignsOnTheNextResponse(t *testing.T) {
	oldKey := []byte(strings.Repeat("o", 32))
	newKey := []byte(strings.Repeat("n", 32))
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecretKey(oldKey))
	c := e.client()
	c.body("/count")
	oldCookie := c.cookie(DefaultCookieName)
	id, _, _ := strings.Cut(oldCookie, ".")

	rotated := e.sibling(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecretKey(newKey, oldKey))
	e.store.resetCounts()
	resp, body := e.rawGetOn(rotated, "/read", DefaultCookieName+"="+oldCookie)
	if body != "1" {
		t.Fatalf("old-key cookie after rotation: body %q", body)
	}
	want := newSigner([][]byte{newKey}).sign(DefaultCookieName, id)
	if got := cookieValueFrom(resp.Header, DefaultCookieName); got != want {
		t.Fatalf("read-only response to an old-key cookie set %q, want the same id re-signed with the new key %q", got, want)
	}
	if w := e.store.writes(); w != 0 {
		t.Fatalf("re-signing cost %d store writes, want 0", w)
	}
	// A current-key cookie is not re-sent.
	resp, _ = e.rawGetOn(rotated, "/read", DefaultCookieName+"="+want)
	if hasCookieNamed(resp.Header, DefaultCookieName) {
		t.Fatal("a cookie signed with the current key was re-sent")
	}
	// The old key retired: the re-signed cookie still works.
	retired := e.sibling(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecretKey(newKey))
	if _, body := e.rawGetOn(retired, "/count", DefaultCookieName+"="+want); body != "2" {
		t.Fatalf("after retiring the old key the re-signed cookie gave %q, want 2", body)
	}
}

// rawGetOn is rawGet against another env's server.
func (e *env) rawGetOn(other *env, path, cookie string) (*http.Response, string) {
	e.t.Helper()
	return other.rawGet(path, cookie)
}

// TestNoIPStoredUnlessChecked: the client IP is personal data; it is
// stored only when WithIgnoreChangeIP(false) needs it, and a stored one is
// dropped by the next save of a manager that does not check it.
func TestNoIPStoredUnlessChecked(t *testing.T) {
	const ip = "203.0.113.77"
	clientIP := WithClientIP(func(*http.Request) string { return ip })
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), clientIP)
	c := e.client()
	c.body("/count")
	c.body("/count")
	for _, r := range e.store.m {
		if strings.Contains(string(r.Data), ip) {
			t.Fatalf("the client IP was stored without an IP check: %s", r.Data)
		}
	}
	checked := e.sibling(t, counterMux(), WithInitializer(map[string]any{"count": 0}), clientIP, WithIgnoreChangeIP(false))
	cc := c.on(checked)
	cc.body("/reset")
	cc.body("/count")
	key := storeKey(c.cookie(DefaultCookieName))
	if r, _ := e.store.get(key); !strings.Contains(string(r.Data), ip) {
		t.Fatalf("WithIgnoreChangeIP(false) did not store the IP it checks: %s", r.Data)
	}
	c.body("/count") // the first manager, which does not check IPs, saves it
	if r, _ := e.store.get(key); strings.Contains(string(r.Data), ip) {
		t.Fatalf("a save without the IP check kept the stored IP: %s", r.Data)
	}
}

// TestDuplicateCookiesPreferALiveSession: a sibling subdomain can plant a
// cookie of our name, listed first. The user's real session must win, not
// be replaced by a fresh one.
func TestDuplicateCookiesPreferALiveSession(t *testing.T) {
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}))
	c := e.client()
	c.body("/count")
	c.body("/count")
	real := c.cookie(DefaultCookieName)
	planted := strings.Repeat("Q", 43) // well-formed, never issued
	resp, body := e.rawGet("/count", DefaultCookieName+"="+planted+"; "+DefaultCookieName+"="+real)
	if body != "3" {
		t.Fatalf("an unknown id listed first replaced the live session: body %q, want 3", body)
	}
	if hasCookieNamed(resp.Header, DefaultCookieName) {
		t.Fatal("the response set a cookie, which would shadow one of the two")
	}
	// Two unknown ids and no live one: a fresh session, as with one.
	if _, body := e.rawGet("/count", DefaultCookieName+"="+planted+"; "+DefaultCookieName+"="+strings.Repeat("R", 43)); body != "1" {
		t.Fatalf("two unknown ids: body %q, want a fresh session", body)
	}
	// No amplification: at most maxCookieIDs lookups however many cookies.
	e.store.resetCounts()
	many := []string{}
	for i := range 20 {
		many = append(many, DefaultCookieName+"="+strings.Repeat(string(rune('a'+i)), 43))
	}
	e.rawGet("/read", strings.Join(many, "; "))
	if n := e.store.count("Load"); n > maxCookieIDs {
		t.Fatalf("20 cookies of our name caused %d loads, want at most %d", n, maxCookieIDs)
	}
}

func TestPartitionedCookie(t *testing.T) {
	if _, err := New(newMapStore(), WithPartitioned(true)); err == nil || !strings.Contains(err.Error(), "Secure") {
		t.Fatalf("Partitioned without Secure: %v, want an error naming Secure", err)
	}
	e := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecure(true), WithPartitioned(true), WithSameSite(http.SameSiteNoneMode))
	resp, _ := e.client().do("/count")
	sc := strings.Join(resp.Header.Values("Set-Cookie"), "\n")
	if !strings.Contains(sc, "; Partitioned") || !strings.Contains(sc, "; Secure") {
		t.Fatalf("Set-Cookie %q lacks Partitioned or Secure", sc)
	}
	c, err := http.ParseSetCookie(resp.Header.Get("Set-Cookie"))
	if err != nil || !c.Partitioned {
		t.Fatalf("net/http does not read the cookie as partitioned: %v %+v", err, c)
	}
	// The deletion cookie must carry it too, or the browser keeps the
	// partitioned one.
	e2 := newEnv(t, counterMux(), WithInitializer(map[string]any{"count": 0}), WithSecure(true), WithPartitioned(true))
	c2 := e2.client()
	c2.body("/count")
	resp, _ = e2.rawGet("/reset", DefaultCookieName+"="+c2.cookie(DefaultCookieName))
	if del := resp.Header.Get("Set-Cookie"); !strings.Contains(del, "Max-Age=0") || !strings.Contains(del, "; Partitioned") {
		t.Fatalf("deletion cookie %q is not partitioned", del)
	}
}
