//go:build unix

package disk

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// The crash and two-process tests run this test binary again as a helper
// process; helperEnv selects what the helper does.
const (
	helperEnv    = "WEBSESSION_DISK_HELPER"
	helperDirEnv = "WEBSESSION_DISK_HELPER_DIR"
	helperArgEnv = "WEBSESSION_DISK_HELPER_ARG"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode, os.Getenv(helperDirEnv), os.Getenv(helperArgEnv)))
	}
	code := m.Run()
	for _, f := range atExit {
		f()
	}
	os.Exit(code)
}

// atExit runs when the test binary ends (the owner benchmarks' sessions).
var atExit []func()

func runHelper(mode, dir, arg string) int {
	var err error
	switch mode {
	case "crashwriter":
		err = crashWriter(dir, arg)
	case "contender":
		err = contender(dir, arg)
	case "efbig":
		err = efbigWriter(dir)
	default:
		err = fmt.Errorf("unknown helper mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 1
	}
	return 0
}

// helperCmd returns a command running this test binary as a helper. Its
// -test.run matches nothing, so if the mode were lost it would run no
// test rather than all of them again.
func helperCmd(ctx context.Context, mode, dir, arg string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, helperDirEnv+"="+dir, helperArgEnv+"="+arg)
	cmd.Stderr = os.Stderr
	return cmd
}

// lineReader collects the lines a helper prints, on its own goroutine.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	ready chan struct{} // closed at the first line or at EOF
	done  chan struct{} // closed at EOF
	once  sync.Once
}

func readLines(r io.Reader) *lineReader {
	lr := &lineReader{ready: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(lr.done)
		defer lr.once.Do(func() { close(lr.ready) })
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			lr.mu.Lock()
			lr.lines = append(lr.lines, sc.Text())
			lr.mu.Unlock()
			lr.once.Do(func() { close(lr.ready) })
		}
	}()
	return lr
}

func (lr *lineReader) all() []string {
	<-lr.done
	lr.mu.Lock()
	defer lr.mu.Unlock()
	return lr.lines
}

// newStore opens a store over dir and closes it at the end of the test.
func newStore(tb testing.TB, dir string, opts ...Option) *Store {
	tb.Helper()
	s, err := New(dir, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// logSink is a slog.Handler that keeps every message, for checking what
// the store logs.
type logSink struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (h *logSink) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}
func (h *logSink) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logSink) WithGroup(string) slog.Handler      { return h }

// count returns how many messages at warning level or above contain
// substr.
func (h *logSink) count(substr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level >= slog.LevelWarn && strings.Contains(r.Message, substr) {
			n++
		}
	}
	return n
}

func (h *logSink) logger() *slog.Logger { return slog.New(h) }

// tree lists every path under dir (relative), for checking that nothing
// appeared or vanished.
func tree(tb testing.TB, dir string) []string {
	tb.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// tempFiles lists what stores that are no longer open left under root:
// temp files, spare files, .store files, and session files a Create did
// not finish (no permission bits).
func tempFiles(tb testing.TB, root string) []string {
	tb.Helper()
	var out []string
	for _, p := range tree(tb, root) {
		b := filepath.Base(p)
		var tok string
		switch {
		case unfinishedFile(tb, filepath.Join(root, p)):
			out = append(out, p)
			continue
		case strings.HasPrefix(b, tempPrefix):
			out = append(out, p)
			continue
		case strings.HasPrefix(b, sparePrefix):
			tok = b[len(sparePrefix):]
		case strings.HasPrefix(b, storePrefix):
			tok = b[len(storePrefix):]
		default:
			continue
		}
		open, err := storeOpen(filepath.Join(root, storePrefix+tok))
		if err != nil {
			tb.Fatal(err)
		}
		if !open {
			out = append(out, p)
		}
	}
	return out
}

// unfinishedFile reports whether p is a session file a Create has not
// finished writing.
func unfinishedFile(tb testing.TB, p string) bool {
	tb.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		tb.Fatal(err)
	}
	_, isKey := keyOfName(filepath.Base(p))
	return isKey && fi.Mode().IsRegular() && fi.Mode().Perm() == 0
}

// t0 is where the tests' times start: far from the real date, in a zone
// with an odd offset, with nanoseconds (like the conformance suite's
// epoch), so that a store reading its own clock or dropping precision
// would show.
var t0 = time.Date(2041, time.March, 7, 13, 45, 12, 123456789, time.FixedZone("UTC+05:45", 5*3600+45*60))

func rec(data string, atime time.Time) session.Record {
	return session.Record{Data: []byte(data), ATime: atime, Created: atime}
}
