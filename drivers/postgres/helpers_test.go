package postgres

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// The tests run against a real PostgreSQL server, never a mock. The DSN
// comes from dsnEnv; the default is the local "test" database on loopback.
const (
	dsnEnv     = "WEBSESSION_POSTGRES_DSN"
	defaultDSN = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
)

// TestMain leaves the examples out when the server is unreachable outside
// CI: examples cannot skip themselves, and they need a server.
func TestMain(m *testing.M) {
	flag.Parse()
	if err := reachable(); err != nil && os.Getenv("CI") != "true" {
		fmt.Fprintf(os.Stderr, "SKIPPING the examples: PostgreSQL unreachable at %q: %v (set %s)\n", dsnUsed, err, dsnEnv)
		_ = flag.Set("test.skip", "^Example")
	}
	os.Exit(m.Run())
}

var (
	reachOnce sync.Once
	reachErr  error
	dsnUsed   string
)

// testDSN returns the DSN of the test server, after checking once per
// process that it answers. Every test and benchmark goes through it: an
// unreachable server skips (loudly) outside CI and fails under CI=true.
func testDSN(tb testing.TB) string {
	tb.Helper()
	if err := reachable(); err != nil {
		msg := fmt.Sprintf("PostgreSQL not reachable at %q (%v); set %s to a DSN of a server where the tests may create schemas and tables", dsnUsed, err, dsnEnv)
		if os.Getenv("CI") == "true" {
			tb.Fatal(msg)
		}
		tb.Skip("SKIPPING PostgreSQL tests: " + msg)
	}
	return dsnUsed
}

// reachable checks once per process that the test server answers.
func reachable() error {
	reachOnce.Do(func() {
		dsnUsed = os.Getenv(dsnEnv)
		if dsnUsed == "" {
			dsnUsed = defaultDSN
		}
		db, err := sql.Open("postgres", dsnUsed)
		if err != nil {
			reachErr = err
			return
		}
		defer db.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		reachErr = db.PingContext(ctx)
	})
	return reachErr
}

// openDB opens a new pool (a new "server") on dsn, closed when tb ends.
// Pools are capped so that parallel tests stay far below the server's
// max_connections.
func openDB(tb testing.TB, dsn string) *sqlx.DB {
	tb.Helper()
	db, err := sqlx.Open("postgres", dsn)
	if err != nil {
		tb.Fatalf("open %q: %v", dsn, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

// openPgx is openDB with pgx's database/sql driver instead of lib/pq.
func openPgx(tb testing.TB, dsn string) *sqlx.DB {
	tb.Helper()
	db, err := sqlx.Open("pgx", dsn)
	if err != nil {
		tb.Fatalf("open %q with pgx: %v", dsn, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	tb.Cleanup(func() { _ = db.Close() })
	return db
}

var (
	adminOnce sync.Once
	adminDB   *sqlx.DB
)

// admin returns a process-wide pool for setup and inspection (creating and
// dropping schemas, killing backends), kept apart from the pools under test.
func admin(tb testing.TB) *sqlx.DB {
	tb.Helper()
	dsn := testDSN(tb)
	adminOnce.Do(func() {
		db, err := sqlx.Open("postgres", dsn)
		if err != nil {
			panic(err) // testDSN has just opened the same DSN
		}
		db.SetMaxOpenConns(4)
		adminDB = db
	})
	return adminDB
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newSchema creates a schema of its own for the calling test, so that no
// two tests (nor two runs at once) ever share a table, and drops it with
// everything in it when the test ends.
func newSchema(tb testing.TB) string {
	tb.Helper()
	db := admin(tb)
	name := "wst_" + randHex(6)
	if _, err := db.Exec(`CREATE SCHEMA ` + pq.QuoteIdentifier(name)); err != nil {
		tb.Fatalf("create schema: %v", err)
	}
	tb.Cleanup(func() {
		if _, err := db.Exec(`DROP SCHEMA ` + pq.QuoteIdentifier(name) + ` CASCADE`); err != nil {
			tb.Errorf("drop schema %s: %v", name, err)
		}
	})
	return name
}

// newStore returns a Store over db with its table created, closed when tb
// ends (before the schema is dropped: cleanups run last-in first-out).
func newStore(tb testing.TB, db *sqlx.DB, opts ...Option) *Store {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := New(ctx, db, opts...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	if err := s.CreateTable(ctx); err != nil {
		tb.Fatalf("CreateTable: %v", err)
	}
	return s
}

// withDatabase makes dsn connect to database name.
func withDatabase(dsn, name string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			panic(err)
		}
		u.Path = "/" + name
		return u.String()
	}
	return dsn + " dbname=" + name
}

// withUser makes dsn log in as user (no password: the test server trusts
// loopback).
func withUser(dsn, user string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			panic(err)
		}
		u.User = url.User(user)
		return u.String()
	}
	return dsn + " user=" + user
}

// withParam adds a connection parameter to a DSN in either of lib/pq's
// forms (URL or key=value).
func withParam(dsn, key, value string) string {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			panic(err)
		}
		q := u.Query()
		q.Set(key, value)
		u.RawQuery = q.Encode()
		return u.String()
	}
	return dsn + " " + key + "='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(value) + "'"
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}
