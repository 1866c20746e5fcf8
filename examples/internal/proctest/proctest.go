// Package proctest runs the example programs as a user does, for their
// tests: built once, started as processes on free ports, stopped by
// signal; and it prepares the databases they run on.
package proctest

import (
	"bufio"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql" // the "mysql" database/sql driver
	_ "github.com/lib/pq"              // the "postgres" database/sql driver
)

var (
	buildMu sync.Mutex
	built   = map[string]string{}
)

// Build builds the program in the package directory pkg (relative to the
// test's working directory) once per test binary and returns its path.
func Build(t *testing.T, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	dir, err := os.MkdirTemp("", "example-bin")
	if err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(pkg)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(abs))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built[pkg] = bin
	return bin
}

// Process is a running example program.
type Process struct {
	cmd  *exec.Cmd
	Line string // the first line it printed
	Base string // the http://host:port it listens on, from Line
	done chan error
}

var listening = regexp.MustCompile(`listening on (http://[^\s,]+)`)

// Start runs bin with args in dir and waits for its first line, which must
// say where it listens. The process is killed when the test ends.
func Start(t *testing.T, bin, dir string, args ...string) *Process {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &Process{cmd: cmd, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(out).ReadString('\n')
		lines <- l
	}()
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() { p.Stop(t, syscall.SIGKILL) })
	select {
	case p.Line = <-lines:
	case <-time.After(60 * time.Second):
		t.Fatal("the program did not start within 60s")
	}
	if p.Line == "" {
		t.Fatalf("the program exited before listening: %v", <-p.done)
	}
	m := listening.FindStringSubmatch(p.Line)
	if m == nil {
		t.Fatalf("start-up line %q does not say where the program listens", p.Line)
	}
	p.Base = m[1]
	return p
}

// Stop sends sig and waits for the process to end; after SIGTERM it must
// exit cleanly.
func (p *Process) Stop(t *testing.T, sig syscall.Signal) {
	if p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case err := <-p.done:
		if sig == syscall.SIGTERM && err != nil {
			t.Errorf("the program did not exit cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Errorf("the program did not exit on %v", sig)
		p.cmd.Process.Kill()
	}
}

// Database describes a database the examples can use in tests.
type Database struct {
	Name, driver, env, defaultDSN string
}

// The databases of the examples, with their DSN variables and loopback
// defaults.
var (
	Postgres = Database{"postgres", "postgres", "WEBSESSION_POSTGRES_DSN", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"}
	MySQL    = Database{"mysql", "mysql", "WEBSESSION_MYSQL_DSN", "root@tcp(127.0.0.1:3306)/test"}
)

// Prepare returns the DSN and a fresh table name, dropping the table when
// the test ends. An unreachable database skips the test loudly, or fails
// it with CI=true.
func (d Database) Prepare(t *testing.T) (dsn, table string) {
	t.Helper()
	dsn = os.Getenv(d.env)
	if dsn == "" {
		dsn = d.defaultDSN
	}
	db, err := sql.Open(d.driver, dsn)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		msg := fmt.Sprintf("%s unreachable at %q: %v (set %s)", d.Name, dsn, err, d.env)
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

// StartInProcess runs a program's run function with args and "-addr
// 127.0.0.1:0" until the test ends, and returns the base URL it prints
// (see app.Serve). run must return nil once its context ends.
func StartInProcess(t *testing.T, run func(ctx context.Context, args []string, stdout io.Writer) error, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"-addr", "127.0.0.1:0"}, args...), pw) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	lines := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(pr).ReadString('\n')
		lines <- l
		io.Copy(io.Discard, pr)
	}()
	select {
	case l := <-lines:
		m := listening.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("start-up line %q does not say where the program listens", l)
		}
		return m[1]
	case err := <-done:
		t.Fatalf("the program exited: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the program did not start within 30s")
	}
	return ""
}

// RedisDSN returns the Redis URL of the tests (WEBSESSION_REDIS_URL,
// default redis://127.0.0.1:6379/0). An unreachable Redis skips the test
// loudly, or fails it with CI=true.
func RedisDSN(t *testing.T) string {
	t.Helper()
	dsn := os.Getenv("WEBSESSION_REDIS_URL")
	if dsn == "" {
		dsn = "redis://127.0.0.1:6379/0"
	}
	err := pingRedis(dsn)
	if err != nil {
		msg := fmt.Sprintf("redis unreachable at %q: %v (set WEBSESSION_REDIS_URL)", dsn, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip("SKIPPING: " + msg)
	}
	return dsn
}

// pingRedis sends PING to the server of a redis:// URL without a client
// library, which the examples get only through the driver.
func pingRedis(dsn string) error {
	u, err := url.Parse(dsn)
	if err != nil {
		return err
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, "PING\r\n"); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(reply, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(reply))
	}
	return nil
}
