package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/websession/websession/examples/internal/proctest"
)

// startInProcess runs the example with args until the test ends and
// returns its base URL.
func startInProcess(t *testing.T, args ...string) string {
	t.Helper()
	return proctest.StartInProcess(t, run, args...)
}

var listenLine = regexp.MustCompile(`^counter: listening on (http://\S+), sessions in the (.+)\n$`)

func baseURL(t *testing.T, line string) string {
	t.Helper()
	m := listenLine.FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("start-up line %q does not say where it listens and which store it uses", line)
	}
	return m[1]
}

// browser is a client with a cookie jar, like curl -c jar -b jar.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}}
}

func (b *browser) get(path string) string {
	b.t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		b.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		b.t.Fatalf("GET %s: %d %q", path, resp.StatusCode, body)
	}
	// Every non-empty response is a line, so that curl's output ends cleanly.
	line, ok := strings.CutSuffix(string(body), "\n")
	if len(body) > 0 && (!ok || strings.Contains(line, "\n")) {
		b.t.Fatalf("GET %s: body %q is not one line ending in a newline", path, body)
	}
	return line
}

// expectCounter runs the README's curl sequence: 1, 2, 3, reset, 1.
func expectCounter(t *testing.T, b *browser) {
	t.Helper()
	for _, want := range []string{"1", "2", "3"} {
		if got := b.get("/count"); got != want {
			t.Fatalf("/count = %q, want %s", got, want)
		}
	}
	if got := b.get("/reset"); got != "" {
		t.Fatalf("/reset = %q, want empty", got)
	}
	if got := b.get("/count"); got != "1" {
		t.Fatalf("/count after /reset = %q, want 1", got)
	}
}

func TestCounterMemory(t *testing.T) {
	base := startInProcess(t, "-store", "memory")
	expectCounter(t, newBrowser(t, base))
	// Two browsers do not share a count.
	a, b := newBrowser(t, base), newBrowser(t, base)
	a.get("/count")
	a.get("/count")
	if got := b.get("/count"); got != "1" {
		t.Fatalf("second browser sees %q", got)
	}
}

func TestUnknownStore(t *testing.T) {
	err := run(context.Background(), []string{"-store", "nosuch"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "unknown store") {
		t.Fatalf("run with an unknown store: %v", err)
	}
}
