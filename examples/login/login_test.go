package main

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/websession/websession/examples/internal/proctest"
)

// startApp runs the example in-process with args until the test ends and
// returns its base URL.
func startApp(t *testing.T, args ...string) string {
	t.Helper()
	return proctest.StartInProcess(t, run, args...)
}

// browser is an HTTP client with a cookie jar and a User-Agent.
type browser struct {
	t    *testing.T
	base string
	ua   string
	c    *http.Client
	last string // the last page's body
}

func newBrowser(t *testing.T, base, ua string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, ua: ua, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) do(method, path string, form url.Values) (int, string) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("User-Agent", b.ua)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	b.last = string(data)
	return resp.StatusCode, b.last
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post submits a form of the last page, with its CSRF token.
func (b *browser) post(path string, form url.Values) (int, string) {
	b.t.Helper()
	m := csrfField.FindStringSubmatch(b.last)
	if m == nil {
		b.t.Fatalf("no CSRF token on the page before POST %s:\n%s", path, b.last)
	}
	if form == nil {
		form = url.Values{}
	}
	form.Set("csrf", m[1])
	return b.do("POST", path, form)
}

func (b *browser) signIn(user, password string) {
	b.t.Helper()
	b.do("GET", "/", nil)
	code, body := b.post("/login", url.Values{"user": {user}, "password": {password}})
	if code != 200 || !strings.Contains(body, "Welcome, "+user+"!") {
		b.t.Fatalf("sign-in as %s: %d\n%s", user, code, body)
	}
}

var rowPattern = regexp.MustCompile(`(?s)<tr class="session" data-current="(true|false)">\s*<td class="device">([^<]*)(.*?)</tr>`)
var handlePattern = regexp.MustCompile(`name="handle" value="([^"]+)"`)

type row struct {
	current bool
	device  string
	handle  string
}

func (b *browser) devices() []row {
	b.t.Helper()
	code, body := b.do("GET", "/devices", nil)
	if code != 200 {
		b.t.Fatalf("/devices: %d", code)
	}
	var rows []row
	for _, m := range rowPattern.FindAllStringSubmatch(body, -1) {
		r := row{current: m[1] == "true", device: strings.TrimSpace(m[2])}
		if h := handlePattern.FindStringSubmatch(m[3]); h != nil {
			r.handle = h[1]
		}
		rows = append(rows, r)
	}
	return rows
}

func (b *browser) signedOut() bool {
	_, body := b.do("GET", "/", nil)
	return strings.Contains(body, `id="signin"`)
}

const (
	firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0"
	iphone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)

func testSignInAndDevices(t *testing.T, args ...string) {
	base := startApp(t, args...)
	laptop, phone := newBrowser(t, base, firefox), newBrowser(t, base, iphone)
	if !laptop.signedOut() {
		t.Fatal("a new visitor is not shown the sign-in form")
	}
	// Wrong password, missing CSRF token.
	if code, _ := laptop.post("/login", url.Values{"user": {"ann"}, "password": {"nope"}}); code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d", code)
	}
	if code, _ := laptop.do("POST", "/login", url.Values{"user": {"ann"}, "password": {"ann-password"}}); code != http.StatusForbidden {
		t.Fatalf("sign-in without the CSRF token: %d, want 403", code)
	}
	laptop.signIn("ann", "ann-password")
	if _, body := laptop.do("GET", "/", nil); strings.Contains(body, "Welcome") {
		t.Fatal("the flash greeting showed twice")
	}
	phone.signIn("ann", "ann-password")

	rows := laptop.devices()
	if len(rows) != 2 {
		t.Fatalf("ann's devices: %+v, want two", rows)
	}
	var other row
	for _, r := range rows {
		switch {
		case r.current && r.device != "Firefox on Linux":
			t.Fatalf("this device is %q", r.device)
		case !r.current:
			other = r
		}
	}
	if other.device != "Safari on iPhone" || other.handle == "" {
		t.Fatalf("the other device: %+v", other)
	}
	// The laptop signs the phone out: the phone's next page is the sign-in form.
	if code, _ := laptop.post("/devices/end", url.Values{"handle": {other.handle}}); code != 200 {
		t.Fatalf("signing the phone out: %d", code)
	}
	if rows := laptop.devices(); len(rows) != 1 || !rows[0].current {
		t.Fatalf("after signing the phone out: %+v", rows)
	}
	if !phone.signedOut() {
		t.Fatal("the phone is still signed in after being signed out from the laptop")
	}
	// Sign out every other device, then this one.
	phone.signIn("ann", "ann-password")
	newBrowser(t, base, "curl/8.5.0").signIn("ann", "ann-password")
	laptop.devices()
	laptop.post("/devices/others", nil)
	if rows := laptop.devices(); len(rows) != 1 || !phone.signedOut() {
		t.Fatalf("after signing out every other device: %+v", rows)
	}
	laptop.post("/logout", nil)
	if !laptop.signedOut() {
		t.Fatal("sign out did not sign out")
	}
}

func TestSignInAndDevicesMemory(t *testing.T) { testSignInAndDevices(t, "-store", "memory") }

func TestSignInAndDevicesPostgres(t *testing.T) {
	dsn, table := proctest.Postgres.Prepare(t)
	testSignInAndDevices(t, "-store", "postgres", "-dsn", dsn, "-table", table)
}

func TestSignInAndDevicesMySQL(t *testing.T) {
	dsn, table := proctest.MySQL.Prepare(t)
	testSignInAndDevices(t, "-store", "mysql", "-dsn", dsn, "-table", table)
}

func TestSignInAndDevicesRedis(t *testing.T) {
	testSignInAndDevices(t, "-store", "redis", "-dsn", proctest.RedisDSN(t))
}

func TestSignInAndDevicesDisk(t *testing.T) {
	testSignInAndDevices(t, "-store", "disk", "-dir", t.TempDir())
}

func TestDeviceLabel(t *testing.T) {
	for ua, want := range map[string]string{
		firefox: "Firefox on Linux",
		iphone:  "Safari on iPhone",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0": "Edge on Windows",
		"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36":                 "Headless Chrome on Linux",
		"": "A browser",
	} {
		if got := deviceLabel(ua); got != want {
			t.Errorf("deviceLabel(%q) = %q, want %q", ua, got, want)
		}
	}
}
