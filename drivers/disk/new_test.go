//go:build unix

package disk

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// New refuses, with the system's own error, a directory the process cannot
// use, instead of starting and failing every request later.
func TestNewRefusesAnUnusableDirectory(t *testing.T) {
	parent := t.TempDir()
	file := filepath.Join(parent, "file")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, dir string
		want      func(error) bool
	}{
		{"a regular file", file, func(err error) bool { return strings.Contains(err.Error(), "not a directory") }},
		{"a path under a regular file", filepath.Join(file, "sessions"), func(err error) bool { return errors.Is(err, syscall.ENOTDIR) }},
	}
	for _, c := range cases {
		logs := &logSink{}
		s, err := New(c.dir, WithLogger(logs.logger()))
		if err == nil {
			s.Close()
			t.Errorf("New over %s succeeded", c.name)
			continue
		}
		if !c.want(err) || !strings.HasPrefix(err.Error(), "disk: new: ") {
			t.Errorf("New over %s = %v, want the real cause", c.name, err)
		}
	}

	// A directory this process may not write: the root itself, or one of
	// its subdirectories.
	for _, sub := range []string{"", "7f"} {
		root := filepath.Join(t.TempDir(), "sessions")
		first := newStore(t, root)
		if err := first.Close(); err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(root, sub)
		makeUnwritable(t, target)
		logs := &logSink{}
		s, err := New(root, WithLogger(logs.logger()))
		if err == nil {
			s.Close()
			t.Errorf("New with %s not writable succeeded", target)
			continue
		}
		if !errors.Is(err, fs.ErrPermission) || !strings.Contains(err.Error(), target) {
			t.Errorf("New with %s not writable = %v, want a permission error naming it", target, err)
		}
		if n := logs.count(""); n != 0 {
			t.Errorf("New logged %d warnings before refusing, want none", n)
		}
	}
}
