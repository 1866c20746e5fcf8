package main

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestRealBrowsers drives two headless Chromium browsers (Debian's
// chromium; .ci/run installs it) through the app: both sign in as ann, the
// first lists both sessions and signs the second out, and the second's
// next page is the sign-in form.
func TestRealBrowsers(t *testing.T) {
	chromium := findChromium(t)
	base := startApp(t, "-store", "memory")

	// Two browser processes with their own profiles: two devices, whose
	// cookies nothing shares.
	first, second := newChrome(t, chromium), newChrome(t, chromium)
	signIn := func(ctx context.Context) {
		t.Helper()
		err := chromedp.Do(ctx,
			chromedp.Navigate(base+"/"),
			chromedp.WaitVisible(chromedp.ID("user")),
			chromedp.SendKeys(chromedp.ID("user"), "ann"),
			chromedp.SendKeys(chromedp.ID("password"), "ann-password"),
			chromedp.Click(chromedp.ID("signin-button")),
			chromedp.WaitVisible(chromedp.ID("hello")),
		)
		if err != nil {
			t.Fatalf("signing in: %v", err)
		}
		if hello, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("hello"))); err != nil || hello != "Hello, ann" {
			t.Fatalf("after signing in the page says %q (%v)", hello, err)
		}
	}
	signIn(first)
	signIn(second)

	sessions := chromedp.Evaluate[int](`document.querySelectorAll("tr.session").length`)
	err := chromedp.Do(first, chromedp.Navigate(base+"/devices"), chromedp.WaitVisible(chromedp.ID("sessions")))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(first, sessions)
	devices, _ := chromedp.Run(first, chromedp.Text(chromedp.ID("sessions")))
	if err != nil || rows != 2 {
		t.Fatalf("the first browser lists %d sessions (%v), want 2:\n%s", rows, err, devices)
	}
	if !strings.Contains(devices, "Headless Chrome on Linux") || !strings.Contains(devices, "(this device)") {
		t.Fatalf("the list does not show the device labels and this device:\n%s", devices)
	}
	// Sign the other device out: the only "Sign out" button in a row.
	err = chromedp.Do(first,
		chromedp.Click(chromedp.CSS(`tr.session[data-current="false"] button.end`)),
		chromedp.WaitNotPresent(chromedp.CSS(`tr.session[data-current="false"]`)),
	)
	if err != nil {
		t.Fatalf("signing the other device out: %v", err)
	}
	if rows, err := chromedp.Run(first, sessions); err != nil || rows != 1 {
		t.Fatalf("after signing the other device out the list has %d sessions (%v), want 1", rows, err)
	}
	// The second browser's next page is the sign-in form.
	if err := chromedp.Do(second, chromedp.Navigate(base+"/"), chromedp.WaitReady(chromedp.CSS("body"))); err != nil {
		t.Fatal(err)
	}
	forms, err := chromedp.Run(second, chromedp.Evaluate[int](`document.querySelectorAll("#signin").length`))
	if err != nil || forms != 1 {
		t.Fatalf("the signed-out browser's next page has %d sign-in forms (%v), want the sign-in form", forms, err)
	}
}

// findChromium returns Debian's chromium. Without it the test skips loudly,
// or fails with CI=true (.ci/run installs it).
func findChromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "no chromium on PATH (apt-get install chromium; .ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING: " + msg)
	return ""
}

// newChrome starts a headless Chromium with an empty profile of its own and
// returns a context driving one tab of it, for the test's duration.
func newChrome(t *testing.T, path string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		// The machine has no network: keep Chromium from trying.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
	})
	if err := chromedp.Do(ctx); err != nil { // start the browser now
		t.Fatalf("starting %s: %v", path, err)
	}
	return ctx
}
