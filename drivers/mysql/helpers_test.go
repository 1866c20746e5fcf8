package mysql

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
)

// The tests run against a real MySQL or MariaDB server.
const (
	dsnEnv     = "WEBSESSION_MYSQL_DSN"
	defaultDSN = "root@tcp(127.0.0.1:3306)/test?parseTime=true&loc=UTC"
)

// serverDSN is the DSN the tests were given; testDSN is the same with the
// database TestMain made for this run.
func serverDSN() string {
	if dsn := os.Getenv(dsnEnv); dsn != "" {
		return dsn
	}
	return defaultDSN
}

// runDSN is serverDSN with the database of this run, set by TestMain.
var runDSN string

func testDSN() string {
	if runDSN != "" {
		return runDSN
	}
	return serverDSN()
}

var (
	reachOnce sync.Once
	reachErr  error
)

// reachable connects once per test binary and reports why the server cannot
// be used, if it cannot.
func reachable() error {
	reachOnce.Do(func() {
		cfg, err := mysqldrv.ParseDSN(testDSN())
		if err != nil {
			reachErr = fmt.Errorf("%s is not a valid DSN: %w", dsnEnv, err)
			return
		}
		cfg.Timeout = 5 * time.Second
		conn, err := mysqldrv.NewConnector(cfg)
		if err != nil {
			reachErr = err
			return
		}
		db := sql.OpenDB(conn)
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		reachErr = db.PingContext(ctx)
	})
	return reachErr
}

// requireDB skips the test, loudly, when the server is unreachable, except
// in CI where a missing database is a failure.
func requireDB(tb testing.TB) {
	tb.Helper()
	err := reachable()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("MySQL/MariaDB unreachable at %q: %v (set %s to a reachable server's DSN)", testDSN(), err, dsnEnv)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip("SKIPPING: " + msg)
}

// TestMain gives this run a database of its own, so that the tests' tables
// never meet those of another run on the same server, and drops it at the
// end. The examples use it too (through dsnEnv), and are left out when the
// server is unreachable: examples cannot skip themselves.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := reachable(); err != nil {
		if os.Getenv("CI") != "true" {
			fmt.Fprintf(os.Stderr, "SKIPPING the examples: MySQL/MariaDB unreachable at %q: %v (set %s)\n", serverDSN(), err, dsnEnv)
			flag.Set("test.skip", "^Example")
		}
		os.Exit(m.Run())
	}
	drop, err := runDatabase()
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating this run's database: %v\n", err)
		os.Exit(1)
	}
	code := m.Run()
	if err := drop(); err != nil {
		fmt.Fprintf(os.Stderr, "dropping this run's database: %v\n", err)
		code = 1
	}
	os.Exit(code)
}

// runDatabase creates the database of this run, points runDSN (and
// dsnEnv, for the examples) at it, and returns how to drop it.
func runDatabase() (drop func() error, err error) {
	cfg, err := mysqldrv.ParseDSN(serverDSN())
	if err != nil {
		return nil, err
	}
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(conn)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "wst_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		db.Close()
		return nil, err
	}
	cfg.DBName = name
	runDSN = cfg.FormatDSN()
	os.Setenv(dsnEnv, runDSN)
	return func() error {
		defer db.Close()
		_, err := db.Exec("DROP DATABASE `" + name + "`")
		return err
	}, nil
}

// testConfig returns the parsed test DSN, with parseTime and loc forced as
// Open forces them.
func testConfig(tb testing.TB) *mysqldrv.Config {
	tb.Helper()
	requireDB(tb)
	cfg, err := mysqldrv.ParseDSN(testDSN())
	if err != nil {
		tb.Fatalf("%s: %v", dsnEnv, err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	return cfg
}

// openPool opens a new pool on the test server, after letting change
// adjust its configuration, and closes it when the test ends.
func openPool(tb testing.TB, change func(*mysqldrv.Config)) *sql.DB {
	tb.Helper()
	cfg := testConfig(tb)
	if change != nil {
		change(cfg)
	}
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	db := sql.OpenDB(conn)
	tb.Cleanup(func() { db.Close() })
	return db
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// freshTable drops table if a previous run left it, and drops it again
// when the test ends.
func freshTable(tb testing.TB, db *sql.DB, table string) {
	tb.Helper()
	if _, err := db.ExecContext(testCtx(tb), "DROP TABLE IF EXISTS `"+table+"`"); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if _, err := db.ExecContext(ctx, "DROP TABLE IF EXISTS `"+table+"`"); err != nil {
			tb.Errorf("dropping %s: %v", table, err)
		}
	})
}

// newTestStore returns a store with its own pool over a fresh table named
// after the test, created with CreateTable.
func newTestStore(tb testing.TB, table string, change func(*mysqldrv.Config), opts ...Option) *Store {
	tb.Helper()
	admin := openPool(tb, nil)
	freshTable(tb, admin, table)
	s := storeOn(tb, openPool(tb, change), table, opts...)
	if err := s.CreateTable(testCtx(tb)); err != nil {
		tb.Fatal(err)
	}
	return s
}

// storeOn builds a Store on db over table, closed when the test ends.
func storeOn(tb testing.TB, db *sql.DB, table string, opts ...Option) *Store {
	tb.Helper()
	s, err := New(testCtx(tb), db, append([]Option{WithTable(table)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// roundTrips counts request/response exchanges on the wire: each time the
// client reads after having written, it waited for the server once. Writes
// in a row (a long parameter sent in pieces, then the execute; a statement
// close, which has no reply, then the next command) are one exchange.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) count() int64 { return r.n.Load() }

// dialer returns a DialFunc whose connections count into r.
func (r *roundTrips) dialer() func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &countingConn{Conn: c, rt: r}, nil
	}
}

type countingConn struct {
	net.Conn
	rt         *roundTrips
	wroteSince atomic.Bool // a write happened since the last read
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.wroteSince.Store(true)
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.wroteSince.Swap(false) {
		c.rt.n.Add(1)
	}
	return c.Conn.Read(b)
}

// SyscallConn keeps the driver's liveness check (a non-blocking read on the
// socket, not an exchange) working through the wrapper.
func (c *countingConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no SyscallConn", c.Conn)
	}
	return sc.SyscallConn()
}

func sqlxDB(db *sql.DB) *sqlx.DB { return sqlx.NewDb(db, "mysql") }
