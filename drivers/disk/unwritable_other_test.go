//go:build unix && !linux

package disk

import (
	"os"
	"testing"
)

// makeUnwritable makes dir unwritable for this process until the test
// ends.
func makeUnwritable(tb testing.TB, dir string) {
	tb.Helper()
	if os.Geteuid() == 0 {
		tb.Skip("SKIPPING: running as root, where permission bits do not bind; the immutable-attribute fallback is Linux's")
	}
	if err := os.Chmod(dir, 0o500); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.Chmod(dir, 0o700) })
}
