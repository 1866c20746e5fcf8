package main

// These tests run the example as a user does: the built program, started
// and stopped as a process.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/websession/websession/examples/internal/proctest"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
)

// binary builds the example once per test run.
func binary(t *testing.T) string { return proctest.Build(t, ".") }

// start runs the example in dir with args on a free port.
func start(t *testing.T, dir string, args ...string) *proctest.Process {
	t.Helper()
	p := proctest.Start(t, binary(t), dir, append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	baseURL(t, p.Line) // the line names the store too
	return p
}

func TestDefaultIsDiskStoreAndSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir) // no flags at all: as `go run ./examples/counter`
	if !strings.Contains(p.Line, "disk store in ./sessions") {
		t.Fatalf("default store: %q, want the disk store in ./sessions", p.Line)
	}
	a, b := newBrowser(t, p.Base), newBrowser(t, p.Base)
	for _, want := range []string{"1", "2", "3"} {
		if got := a.get("/count"); got != want {
			t.Fatalf("A: %q, want %s", got, want)
		}
	}
	b.get("/count")
	if fi, err := os.Stat(filepath.Join(dir, "sessions")); err != nil || !fi.IsDir() {
		t.Fatalf("./sessions not created: %v", err)
	}

	for round, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		p.Stop(t, sig)
		p = start(t, dir)
		a.base, b.base = p.Base, p.Base
		if got, want := a.get("/count"), fmt.Sprint(4+round); got != want {
			t.Fatalf("after a restart (%v), A counts %q, want %s", sig, got, want)
		}
		if got, want := b.get("/count"), fmt.Sprint(2+round); got != want {
			t.Fatalf("after a restart (%v), B counts %q, want %s", sig, got, want)
		}
	}
	if got := a.get("/reset"); got != "" {
		t.Fatalf("/reset: %q", got)
	}
	if got := a.get("/count"); got != "1" {
		t.Fatalf("after /reset: %q", got)
	}
}

// testSharedAcrossServers runs two example processes on two ports over one
// table: a browser's count continues whichever server it reaches.
func testSharedAcrossServers(t *testing.T, s proctest.Database) {
	dsn, table := s.Prepare(t)
	args := []string{"-store", s.Name, "-dsn", dsn, "-table", table}
	p1, p2 := start(t, t.TempDir(), args...), start(t, t.TempDir(), args...)
	if !strings.Contains(p1.Line, s.Name+" store") {
		t.Fatalf("start-up line %q does not name the %s store", p1.Line, s.Name)
	}
	// Cookies are not port-scoped, so one jar serves both servers.
	b := newBrowser(t, p1.Base)
	for i := 1; i <= 6; i++ {
		b.base = []string{p1.Base, p2.Base}[i%2]
		if got := b.get("/count"); got != fmt.Sprint(i) {
			t.Fatalf("request %d (server %d): %q, want %d", i, 1+i%2, got, i)
		}
	}
	b.base = p2.Base
	b.get("/reset")
	b.base = p1.Base
	if got := b.get("/count"); got != "1" {
		t.Fatalf("after /reset on the other server: %q, want 1", got)
	}
	p1.Stop(t, syscall.SIGTERM)
	p2.Stop(t, syscall.SIGTERM)
}

func TestPostgresTwoServersShareCounts(t *testing.T) { testSharedAcrossServers(t, proctest.Postgres) }

func TestMySQLTwoServersShareCounts(t *testing.T) { testSharedAcrossServers(t, proctest.MySQL) }

// TestRedisTwoServersShareCounts: two counters over one Redis, as the
// README's quickstart shows.
func TestRedisTwoServersShareCounts(t *testing.T) {
	args := []string{"-store", "redis", "-dsn", proctest.RedisDSN(t)}
	p1, p2 := start(t, t.TempDir(), args...), start(t, t.TempDir(), args...)
	if !strings.Contains(p1.Line, "redis store") {
		t.Fatalf("start-up line %q does not name the redis store", p1.Line)
	}
	b := newBrowser(t, p1.Base)
	for i := 1; i <= 6; i++ {
		b.base = []string{p1.Base, p2.Base}[i%2]
		if got := b.get("/count"); got != fmt.Sprint(i) {
			t.Fatalf("request %d (server %d): %q, want %d", i, 1+i%2, got, i)
		}
	}
}

// TestRedisCacheTwoServersShareCounts: the same with each server's client
// cache on (-redis-cache): each sees the other's increments, and none is
// lost, however fresh its cached copy of the session.
func TestRedisCacheTwoServersShareCounts(t *testing.T) {
	args := []string{"-store", "redis", "-dsn", proctest.RedisDSN(t), "-redis-cache", "8"}
	p1, p2 := start(t, t.TempDir(), args...), start(t, t.TempDir(), args...)
	if !strings.Contains(p1.Line, "client cache of 8 MiB") {
		t.Fatalf("start-up line %q does not name the client cache", p1.Line)
	}
	b := newBrowser(t, p1.Base)
	for i := 1; i <= 40; i++ {
		b.base = []string{p1.Base, p2.Base}[i%2]
		if got := b.get("/count"); got != fmt.Sprint(i) {
			t.Fatalf("request %d (server %d): %q, want %d", i, 1+i%2, got, i)
		}
	}
}

func TestDatabaseStoresNeedDSN(t *testing.T) {
	for _, name := range []string{"postgres", "mysql"} {
		err := run(context.Background(), []string{"-store", name}, os.Stdout)
		if err == nil || !strings.Contains(err.Error(), "-dsn") {
			t.Errorf("-store %s without -dsn: %v", name, err)
		}
	}
}

// TestCommandLine checks the program's exit codes and messages, as a shell
// sees them.
func TestCommandLine(t *testing.T) {
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		status int
		output string // in stderr
	}{
		{[]string{"-h"}, 0, "-store"},
		{[]string{"-help"}, 0, "-addr"},
		{[]string{"stray"}, 2, `unexpected argument "stray"`},
		{[]string{"-store", "memory", "-dir", "/tmp/x"}, 2, "-dir does not apply to -store memory"},
		{[]string{"-store", "disk", "-dsn", "x", "-table", "t"}, 2, "-dsn, -table does not apply to -store disk"},
		{[]string{"-store", "postgres", "-dsn", "x", "-redis-cache", "8"}, 2, "-redis-cache does not apply to -store postgres"},
		{[]string{"-store", "nosuch"}, 2, `unknown store "nosuch"`},
		{[]string{"-nosuchflag"}, 2, "flag provided but not defined"},
		// A store that cannot work is refused at start-up, with the cause.
		{[]string{"-dir", filepath.Join(file, "sessions")}, 2, "not a directory"},
	} {
		cmd := exec.Command(binary(t), tc.args...)
		cmd.Dir = t.TempDir()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		err := cmd.Run()
		status := 0
		if ee, ok := err.(*exec.ExitError); ok {
			status = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if status != tc.status || !strings.Contains(stderr.String(), tc.output) {
			t.Errorf("counter %s: exit status %d, stderr %q; want %d and %q", strings.Join(tc.args, " "), status, stderr.String(), tc.status, tc.output)
		}
	}
}
