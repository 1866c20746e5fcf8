package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// ownersMux is a small login app: /login?user=&device= signs in (Regenerate,
// SetOwner, SetLabel), /whoami prints the owner, /devices lists the user's
// sessions as "handle label current" lines, /end?h= ends one, /others ends
// every other, /all ends all, /logout kills.
func ownersMux(t *testing.T, m **Manager) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		must(t, s.Regenerate())
		must(t, s.SetOwner(r.FormValue("user")))
		must(t, s.SetLabel("device", r.FormValue("device")))
		must(t, s.Set("signed-in", true))
	})
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		owner, err := FromContext(r.Context()).Owner()
		must(t, err)
		io.WriteString(w, owner)
	})
	owner := func(r *http.Request) string {
		o, err := FromContext(r.Context()).Owner()
		must(t, err)
		return o
	}
	mux.HandleFunc("/devices", func(w http.ResponseWriter, r *http.Request) {
		infos, err := (*m).Sessions(r.Context(), owner(r))
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, in := range infos {
			fmt.Fprintf(w, "%s %s %v\n", in.Handle, in.Labels["device"], in.Current)
		}
	})
	mux.HandleFunc("/end", func(w http.ResponseWriter, r *http.Request) {
		if err := (*m).EndSession(r.Context(), owner(r), r.FormValue("h")); err != nil {
			http.Error(w, err.Error(), 404)
		}
	})
	mux.HandleFunc("/others", func(w http.ResponseWriter, r *http.Request) {
		n, err := (*m).EndSessions(r.Context(), owner(r), true)
		must(t, err)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/all", func(w http.ResponseWriter, r *http.Request) {
		n, err := (*m).EndSessions(r.Context(), owner(r), false)
		must(t, err)
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/logout", func(w http.ResponseWriter, r *http.Request) { must(t, FromContext(r.Context()).Kill()) })
	return mux
}

type device struct{ handle, label, current string }

func devices(t *testing.T, c *client) []device {
	t.Helper()
	var out []device
	for _, line := range strings.Split(strings.TrimSpace(c.body("/devices")), "\n") {
		if f := strings.Fields(line); len(f) == 3 {
			out = append(out, device{f[0], f[1], f[2]})
		}
	}
	return out
}

func TestOwnerSessions(t *testing.T) {
	var m *Manager
	e := newEnv(t, ownersMux(t, &m))
	m = e.m
	laptop, phone, bob := e.client(), e.client(), e.client()
	laptop.body("/login?user=ann&device=laptop")
	if got := laptop.body("/whoami"); got != "ann" {
		t.Fatalf("owner %q", got)
	}
	e.clock.Advance(time.Minute)
	phone.body("/login?user=ann&device=phone")
	bob.body("/login?user=bob&device=desktop")
	ds := devices(t, laptop)
	if len(ds) != 2 || ds[0].label != "phone" || ds[1].label != "laptop" || ds[0].current != "false" || ds[1].current != "true" {
		t.Fatalf("ann's devices from the laptop: %+v, want phone then laptop (most recent first), laptop current", ds)
	}
	for _, d := range ds {
		if strings.Contains(d.handle, laptop.cookie(DefaultCookieName)) || d.handle == storeKey(laptop.cookie(DefaultCookieName)) {
			t.Fatal("a handle reveals the id or the store key")
		}
		if resp, _ := e.rawGet("/whoami", DefaultCookieName+"="+d.handle); resp.StatusCode != 200 {
			t.Fatal("a handle used as a cookie broke the request")
		} else if _, body := e.rawGet("/whoami", DefaultCookieName+"="+d.handle); body != "" {
			t.Fatal("a handle used as a cookie reached a session")
		}
	}
	// The laptop signs the phone out; the phone's next page is signed out.
	if resp, body := laptop.do("/end?h=" + ds[0].handle); resp.StatusCode != 200 {
		t.Fatalf("end: %d %s", resp.StatusCode, body)
	}
	if got := phone.body("/whoami"); got != "" {
		t.Fatalf("the ended phone session still answers as %q", got)
	}
	if resp, _ := laptop.do("/end?h=" + ds[0].handle); resp.StatusCode != 404 {
		t.Fatalf("ending an ended session: %d, want ErrNoSuchSession", resp.StatusCode)
	}
	// Bob's handle cannot be ended through ann.
	bobHandle := devices(t, bob)[0].handle
	if resp, _ := laptop.do("/end?h=" + bobHandle); resp.StatusCode != 404 {
		t.Fatal("ann ended bob's session")
	}
	// Expired sessions are never listed.
	phone.body("/login?user=ann&device=phone2")
	e.clock.Advance(DefaultTimeout - 30*time.Second)
	laptop.body("/whoami") // keeps the laptop alive (touch)
	e.clock.Advance(time.Minute)
	if ds := devices(t, laptop); len(ds) != 1 || ds[0].label != "laptop" {
		t.Fatalf("after phone2 expired: %+v, want the laptop alone", ds)
	}
}

func TestOwnerEndOthersAndAll(t *testing.T) {
	var m *Manager
	e := newEnv(t, ownersMux(t, &m))
	m = e.m
	a, b, c := e.client(), e.client(), e.client()
	for i, cl := range []*client{a, b, c} {
		cl.body(fmt.Sprintf("/login?user=ann&device=d%d", i))
	}
	if n := a.body("/others"); n != "2" {
		t.Fatalf("EndSessions(keepCurrent) ended %s, want 2", n)
	}
	if b.body("/whoami") != "" || c.body("/whoami") != "" || a.body("/whoami") != "ann" {
		t.Fatal("sign-out-everywhere-else ended the wrong sessions")
	}
	b.body("/login?user=ann&device=again")
	resp, n := a.do("/all")
	if n != "2" {
		t.Fatalf("EndSessions(all) ended %s, want 2", n)
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Set-Cookie"), ""), "Max-Age=0") {
		t.Fatal("ending the current session did not drop its cookie")
	}
	if a.body("/whoami") != "" || b.body("/whoami") != "" {
		t.Fatal("EndSessions(all) left a session")
	}
	if e.store.len() != 0 {
		t.Fatalf("%d records left", e.store.len())
	}
}

func TestOwnerBindingCostsNoRoundTrip(t *testing.T) {
	var m *Manager
	e := newEnv(t, ownersMux(t, &m))
	m = e.m
	c := e.client()
	c.body("/login?user=ann&device=x") // a new session: one Create
	if w := e.store.writes(); w != 1 {
		t.Fatalf("a login that binds an owner cost %d store writes, want 1", w)
	}
	rec, _ := e.store.get(storeKey(c.cookie(DefaultCookieName)))
	if rec.Owner != ownerKey("ann") || rec.Owner == "ann" || !ValidKey(rec.Owner) {
		t.Fatalf("Record.Owner = %q, want the owner's hashed key", rec.Owner)
	}
	// Survives Regenerate, dropped by Kill.
	e.store.resetCounts()
	c.body("/login?user=ann&device=y")
	if got := c.body("/whoami"); got != "ann" {
		t.Fatalf("owner after Regenerate %q", got)
	}
	c.body("/logout")
	if got := c.body("/whoami"); got != "" {
		t.Fatalf("owner after Kill %q", got)
	}
}

type noIndexStore struct{ Store }

func TestOwnerNeedsAnIndex(t *testing.T) {
	m, err := New(noIndexStore{newMapStore()}, WithCleanupInterval(0))
	must(t, err)
	if _, err := m.Sessions(context.Background(), "ann"); !errors.Is(err, ErrNoOwnerIndex) {
		t.Fatalf("Sessions on a store without OwnerIndex: %v", err)
	}
	if _, err := m.EndSessions(context.Background(), "ann", false); !errors.Is(err, ErrNoOwnerIndex) {
		t.Fatalf("EndSessions: %v", err)
	}
}

func TestPopIsReadOnce(t *testing.T) {
	hold := newHoldAll(2)
	mux := http.NewServeMux()
	mux.HandleFunc("/flash", func(w http.ResponseWriter, r *http.Request) { must(t, FromContext(r.Context()).Set("flash", "saved!")) })
	mux.HandleFunc("/show", func(w http.ResponseWriter, r *http.Request) {
		msg, err := Pop[string](FromContext(r.Context()), "flash")
		if r.FormValue("hold") != "" {
			hold.park()
		}
		if err == nil {
			io.WriteString(w, msg)
		}
	})
	e := newEnv(t, mux)
	c := e.client()
	c.body("/flash")
	if got := c.body("/show"); got != "saved!" {
		t.Fatalf("first Pop %q", got)
	}
	if got := c.body("/show"); got != "" {
		t.Fatalf("second Pop %q: a flash must show once", got)
	}
	// Two tabs Pop the same flash at once: one shows it, the other fails.
	c.body("/flash")
	done := make(chan []int)
	go func() {
		codes, _ := parallel(c, 2, func(int) string { return "/show?hold=1" })
		done <- codes
	}()
	hold.loaded.Wait()
	close(hold.release)
	codes := <-done
	if !(codes[0] == 200 && codes[1] == 409 || codes[0] == 409 && codes[1] == 200) {
		t.Fatalf("two overlapping Pops of one flash: %v, want one 200 and one 409", codes)
	}
}

func TestRememberMe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		must(t, s.Set("user", "ann"))
		if r.FormValue("remember") != "" {
			must(t, s.RememberMe(30*24*time.Hour))
		}
	})
	mux.HandleFunc("/forget", func(w http.ResponseWriter, r *http.Request) { must(t, FromContext(r.Context()).RememberMe(0)) })
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) { Get[string](FromContext(r.Context()), "user") })
	e := newEnv(t, mux, WithTouchInterval(0))
	setCookie := func(resp *http.Response) string { return strings.Join(resp.Header.Values("Set-Cookie"), "|") }
	plain := e.client()
	if resp, _ := plain.do("/login"); strings.Contains(setCookie(resp), "Max-Age") {
		t.Fatalf("a login without remember-me set a persistent cookie: %s", setCookie(resp))
	}
	c := e.client()
	if resp, _ := c.do("/login?remember=1"); !strings.Contains(setCookie(resp), "Max-Age=2592000") {
		t.Fatalf("remember-me cookie: %s", setCookie(resp))
	}
	e.clock.Advance(time.Hour)
	if resp, _ := c.do("/read"); !strings.Contains(setCookie(resp), "Max-Age=2592000") {
		t.Fatalf("a touch of a remembered session did not slide its cookie: %s", setCookie(resp))
	}
	if resp, _ := plain.do("/read"); setCookie(resp) != "" {
		t.Fatalf("a touch of a plain session re-sent its cookie: %s", setCookie(resp))
	}
	resp, _ := c.do("/forget")
	if sc := setCookie(resp); !strings.HasPrefix(sc, DefaultCookieName+"=") || strings.Contains(sc, "Max-Age") {
		t.Fatalf("RememberMe(0) must turn the cookie back into a browser-session one: %q", sc)
	}
	if err := (&Session{}).RememberMe(time.Millisecond); err == nil {
		t.Fatal("a sub-second max-age was accepted")
	}
}

func TestStatus(t *testing.T) {
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s := FromContext(r.Context())
		st := func() {
			v, err := s.Status()
			must(t, err)
			got = append(got, v.String())
		}
		st()
		if r.FormValue("set") != "" {
			must(t, s.Set("k", r.FormValue("set")))
			st()
		}
		if r.FormValue("kill") != "" {
			must(t, s.Kill())
			st()
		}
	})
	e := newEnv(t, mux)
	c := e.client()
	c.body("/?set=1")
	c.body("/")
	c.body("/?kill=1")
	want := "new changed loaded loaded killed"
	if strings.Join(got, " ") != want {
		t.Fatalf("statuses %q, want %q", strings.Join(got, " "), want)
	}
}
