package main

// These tests run the example as a user does: the built program, started
// and stopped as a process.

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	_ "github.com/lib/pq"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds the example once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "counter-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "counter")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type process struct {
	cmd  *exec.Cmd
	base string
	line string
	done chan error
}

// start runs the example in dir with args on a free port.
func start(t *testing.T, dir string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(binary(t), append([]string{"-addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- l
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.stop(t, syscall.SIGKILL) })
	select {
	case p.line = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("the example did not start within 60s")
	}
	if p.line == "" {
		t.Fatalf("the example exited before listening: %v", <-p.done)
	}
	p.base = baseURL(t, p.line)
	return p
}

// stop sends sig and waits for the process to end.
func (p *process) stop(t *testing.T, sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("the example did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the example did not exit on %v", sig)
		p.cmd.Process.Kill()
	}
}

func TestDefaultIsDiskStoreAndSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	p := start(t, dir) // no flags at all: as `go run ./examples/counter`
	if !strings.Contains(p.line, "disk store in ./sessions") {
		t.Fatalf("default store: %q, want the disk store in ./sessions", p.line)
	}
	a, b := newBrowser(t, p.base), newBrowser(t, p.base)
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
		p.stop(t, sig)
		p = start(t, dir)
		a.base, b.base = p.base, p.base
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

// sqlStore describes a database the example can use in tests.
type sqlStore struct {
	name, driver, env, defaultDSN string
}

var (
	postgresStore = sqlStore{"postgres", "postgres", "WEBSESSION_POSTGRES_DSN", "postgres://root@127.0.0.1:5432/test?sslmode=disable"}
	mysqlStore    = sqlStore{"mysql", "mysql", "WEBSESSION_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"}
)

// prepare returns the DSN and a fresh table name, dropping the table when
// the test ends. An unreachable database skips loudly, or fails with CI=true.
func (s sqlStore) prepare(t *testing.T) (dsn, table string) {
	t.Helper()
	dsn = os.Getenv(s.env)
	if dsn == "" {
		dsn = s.defaultDSN
	}
	db, err := sql.Open(s.driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("%s unreachable at %q: %v (set %s)", s.name, dsn, err, s.env)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	var suffix [6]byte
	rand.Read(suffix[:])
	table = "ws_example_" + hex.EncodeToString(suffix[:])
	t.Cleanup(func() {
		if _, err := db.Exec("DROP TABLE IF EXISTS " + table); err != nil {
			t.Errorf("dropping %s: %v", table, err)
		}
		db.Close()
	})
	return dsn, table
}

// testSharedAcrossServers runs two example processes on two ports over one
// table: a browser's count continues whichever server it reaches.
func testSharedAcrossServers(t *testing.T, s sqlStore) {
	dsn, table := s.prepare(t)
	args := []string{"-store", s.name, "-dsn", dsn, "-table", table}
	p1, p2 := start(t, t.TempDir(), args...), start(t, t.TempDir(), args...)
	if !strings.Contains(p1.line, s.name+" store") {
		t.Fatalf("start-up line %q does not name the %s store", p1.line, s.name)
	}
	// Cookies are not port-scoped, so one jar serves both servers.
	b := newBrowser(t, p1.base)
	for i := 1; i <= 6; i++ {
		b.base = []string{p1.base, p2.base}[i%2]
		if got := b.get("/count"); got != fmt.Sprint(i) {
			t.Fatalf("request %d (server %d): %q, want %d", i, 1+i%2, got, i)
		}
	}
	b.base = p2.base
	b.get("/reset")
	b.base = p1.base
	if got := b.get("/count"); got != "1" {
		t.Fatalf("after /reset on the other server: %q, want 1", got)
	}
	p1.stop(t, syscall.SIGTERM)
	p2.stop(t, syscall.SIGTERM)
}

func TestPostgresTwoServersShareCounts(t *testing.T) { testSharedAcrossServers(t, postgresStore) }

func TestMySQLTwoServersShareCounts(t *testing.T) { testSharedAcrossServers(t, mysqlStore) }

func TestDatabaseStoresNeedDSN(t *testing.T) {
	for _, name := range []string{"postgres", "mysql"} {
		err := run(context.Background(), []string{"-store", name}, os.Stdout)
		if err == nil || !strings.Contains(err.Error(), "-dsn") {
			t.Errorf("-store %s without -dsn: %v", name, err)
		}
	}
}
