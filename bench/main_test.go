package bench

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// The disk backends' directories live under one scratch root, removed when
// the test binary ends rather than after each benchmark. On a file system
// that avoids reusing recently freed inodes (ext4 without a journal skips
// inodes deleted in the last 60 to 300 seconds when it allocates), deleting
// a finished benchmark's tens of thousands of files would slow every file
// creation in the benchmarks that follow, an artefact of the harness rather
// than of any library. What each library's own writes free (the disk
// driver's rename over the old file) stays part of its measurement.
var (
	scratchMu   sync.Mutex
	scratchRoot string
)

// scratchDir returns a new empty directory under the scratch root, which
// lives in the usual temp dir (TMPDIR); the disk backends of both
// libraries therefore run on the same file system.
func scratchDir(tb testing.TB) string {
	tb.Helper()
	scratchMu.Lock()
	defer scratchMu.Unlock()
	if scratchRoot == "" {
		root, err := os.MkdirTemp("", "websession-bench-")
		if err != nil {
			tb.Fatal(err)
		}
		scratchRoot = root
	}
	dir, err := os.MkdirTemp(scratchRoot, "store-")
	if err != nil {
		tb.Fatal(err)
	}
	return dir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if scratchRoot != "" {
		if err := os.RemoveAll(scratchRoot); err != nil {
			fmt.Fprintf(os.Stderr, "removing %s: %v\n", scratchRoot, err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}
