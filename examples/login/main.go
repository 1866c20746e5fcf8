// Command login is a small sign-in app over any of websession's stores,
// showing owners and the everyday helpers:
//
//	go run ./examples/login            # http://localhost:8080, sessions in ./sessions
//
// Sign in as ann (password "ann-password") or bob ("bob-password"), from
// two browsers: /devices ("where you're signed in") lists each session of
// the user with its device, when it was last seen and which one is this
// device, and signs out one device, every other device, or this one.
//
// It uses Regenerate at sign-in (no session fixation), SetOwner and
// SetLabel (the listing), Pop (the flash greeting, shown once), RememberMe
// (the "remember me" box), a CSRF token in every form, and Manager's
// Sessions, EndSession and EndSessions. The store flags are the counter
// example's (-store, -dir, -dsn, -table).
package main

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"flag"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/websession/websession/examples/internal/app"

	session "github.com/websession/websession/core"
	"github.com/websession/websession/examples/internal/stores"
)

func main() { app.Main("login", run) }

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("login", flag.ContinueOnError)
	addr := fs.String("addr", ":8080", "address to listen on")
	storeFlags := stores.Register(fs)
	if err := app.Parse(fs, args); err != nil {
		return err
	}
	store, describe, closeStore, err := storeFlags.Open(ctx)
	if err != nil {
		return err
	}
	defer closeStore()
	// Sessions last 30 days idle, so that "remember me" means it; without
	// it, the cookie ends with the browser.
	m, err := session.New(store, session.WithTimeout(30*24*time.Hour))
	if err != nil {
		return err
	}
	defer m.Close()
	return app.Serve(ctx, stdout, "login", *addr, m.Middleware(newApp(m)), describe)
}

// users are the demo accounts: name → password. A real application checks
// a password hash (bcrypt, argon2id) from its database.
var users = map[string]string{"ann": "ann-password", "bob": "bob-password"}

//go:embed templates/*.html
var templateFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago": func(t time.Time) string { return time.Since(t).Round(time.Second).String() + " ago" },
}).ParseFS(templateFS, "templates/*.html"))

type site struct {
	m *session.Manager
}

func newApp(m *session.Manager) http.Handler {
	a := &site{m: m}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.home)
	mux.HandleFunc("POST /login", a.login)
	mux.HandleFunc("GET /devices", a.devices)
	mux.HandleFunc("POST /devices/end", a.endOne)
	mux.HandleFunc("POST /devices/others", a.endOthers)
	mux.HandleFunc("POST /logout", a.logout)
	return mux
}

// page is what every template gets.
type page struct {
	User     string
	Flash    string
	CSRF     string
	Error    string
	Sessions []session.SessionInfo
}

func (a *site) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	s := session.FromContext(r.Context())
	token, err := csrfToken(s)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p.CSRF = token
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, p); err != nil {
		slog.ErrorContext(r.Context(), "render", "page", name, "err", err)
	}
}

func (a *site) fail(w http.ResponseWriter, r *http.Request, err error) {
	slog.ErrorContext(r.Context(), "login example", "path", r.URL.Path, "err", err)
	code := session.StatusCode(err)
	http.Error(w, http.StatusText(code), code)
}

// csrfToken returns the session's CSRF token, creating it on first use.
func csrfToken(s *session.Session) (string, error) {
	tok, err := session.Get[string](s, "csrf")
	if err == nil {
		return tok, nil
	}
	if !errors.Is(err, session.ErrNoValue) {
		return "", err
	}
	var b [24]byte
	rand.Read(b[:])
	tok = base64.RawURLEncoding.EncodeToString(b[:])
	return tok, s.Set("csrf", tok)
}

// checkCSRF refuses a form that does not carry the session's token.
func checkCSRF(w http.ResponseWriter, r *http.Request) bool {
	want, err := session.Get[string](session.FromContext(r.Context()), "csrf")
	got := r.PostFormValue("csrf")
	if err != nil || got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		http.Error(w, "invalid or missing CSRF token: reload the page", http.StatusForbidden)
		return false
	}
	return true
}

func (a *site) home(w http.ResponseWriter, r *http.Request) {
	s := session.FromContext(r.Context())
	user, err := s.Owner()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if user == "" {
		a.render(w, r, http.StatusOK, "signin.html", page{})
		return
	}
	flash, err := session.Pop[string](s, "flash")
	if err != nil && !errors.Is(err, session.ErrNoValue) {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "home.html", page{User: user, Flash: flash})
}

func (a *site) login(w http.ResponseWriter, r *http.Request) {
	if !checkCSRF(w, r) {
		return
	}
	name, password := r.PostFormValue("user"), r.PostFormValue("password")
	want, ok := users[name]
	if !ok || subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
		a.render(w, r, http.StatusUnauthorized, "signin.html", page{Error: "Unknown user or wrong password."})
		return
	}
	s := session.FromContext(r.Context())
	// A new id at sign-in: an id planted or seen before cannot ride into
	// the signed-in session.
	err := s.Regenerate()
	if err == nil {
		err = s.SetOwner(name)
	}
	if err == nil {
		err = s.SetLabel("device", deviceLabel(r.UserAgent()))
	}
	if err == nil && r.PostFormValue("remember") != "" {
		err = s.RememberMe(30 * 24 * time.Hour)
	}
	if err == nil {
		err = s.Set("flash", "Welcome, "+name+"!")
	}
	if err == nil {
		err = s.Delete("csrf") // a fresh token for the signed-in session
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// signedIn returns the signed-in user, or sends the visitor to sign in.
func (a *site) signedIn(w http.ResponseWriter, r *http.Request) (string, bool) {
	user, err := session.FromContext(r.Context()).Owner()
	if err != nil {
		a.fail(w, r, err)
		return "", false
	}
	if user == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return "", false
	}
	return user, true
}

func (a *site) devices(w http.ResponseWriter, r *http.Request) {
	user, ok := a.signedIn(w, r)
	if !ok {
		return
	}
	infos, err := a.m.Sessions(r.Context(), user)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.render(w, r, http.StatusOK, "devices.html", page{User: user, Sessions: infos})
}

func (a *site) endOne(w http.ResponseWriter, r *http.Request) {
	user, ok := a.signedIn(w, r)
	if !ok || !checkCSRF(w, r) {
		return
	}
	err := a.m.EndSession(r.Context(), user, r.PostFormValue("handle"))
	if err != nil && !errors.Is(err, session.ErrNoSuchSession) { // already gone: fine
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices", http.StatusSeeOther)
}

func (a *site) endOthers(w http.ResponseWriter, r *http.Request) {
	user, ok := a.signedIn(w, r)
	if !ok || !checkCSRF(w, r) {
		return
	}
	if _, err := a.m.EndSessions(r.Context(), user, true); err != nil {
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/devices", http.StatusSeeOther)
}

func (a *site) logout(w http.ResponseWriter, r *http.Request) {
	if !checkCSRF(w, r) {
		return
	}
	if err := session.FromContext(r.Context()).Kill(); err != nil {
		a.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// deviceLabel names a browser from its User-Agent, roughly, for people to
// recognize their devices: "Firefox on Linux".
func deviceLabel(ua string) string {
	browser := "A browser"
	for _, b := range []struct{ token, name string }{
		{"Edg/", "Edge"}, {"OPR/", "Opera"}, {"HeadlessChrome/", "Headless Chrome"}, {"Chrome/", "Chrome"},
		{"Firefox/", "Firefox"}, {"Safari/", "Safari"}, {"curl/", "curl"}, {"Go-http-client/", "Go client"},
	} {
		if strings.Contains(ua, b.token) {
			browser = b.name
			break
		}
	}
	for _, o := range []struct{ token, name string }{
		{"Android", "Android"}, {"iPhone", "iPhone"}, {"iPad", "iPad"}, {"Windows", "Windows"},
		{"Mac OS X", "macOS"}, {"CrOS", "ChromeOS"}, {"Linux", "Linux"},
	} {
		if strings.Contains(ua, o.token) {
			return browser + " on " + o.name
		}
	}
	return browser
}
