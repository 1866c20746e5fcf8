package postgres

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// harness returns the conformance harness over dsn: every namespace is a
// table of a schema made for this run, and every NewStore call a new pool,
// as a second application server would have.
func harness(tb testing.TB, dsn string) conformance.Harness {
	return harnessWith(tb, dsn, openDB)
}

// harnessWith is harness with the pools made by open.
func harnessWith(tb testing.TB, dsn string, open func(testing.TB, string) *sqlx.DB) conformance.Harness {
	schema := newSchema(tb)
	return conformance.Harness{
		NewStore: func(tb testing.TB, namespace string) session.Store {
			db := open(tb, dsn)
			// CreateTable on every call: the second instance of a namespace
			// may come up while the first is still creating the table, and
			// CreateTable is safe to run concurrently.
			return newStore(tb, db, WithSchema(schema), WithTable("t_"+namespace))
		},
		Precision: time.Microsecond, // timestamptz
	}
}

// TestConformance runs the whole suite, nothing skipped.
func TestConformance(t *testing.T) {
	conformance.Run(t, harness(t, testDSN(t)))
}

// TestConformancePgx runs the whole suite over pools opened with pgx's
// database/sql driver (github.com/jackc/pgx/v5/stdlib) instead of lib/pq:
// its errors (*pgconn.PgError), its binary bytea and timestamptz
// encodings, its cancellation and its prepared statements.
func TestConformancePgx(t *testing.T) {
	dsn := testDSN(t)
	if db := openPgx(t, dsn); db.Driver() != stdlib.GetDefaultDriver() {
		t.Fatalf("pool driver is %T, want pgx's", db.Driver())
	}
	conformance.Run(t, harnessWith(t, dsn, openPgx))
}

// farZone is as far from UTC as a zone gets (UTC+14), and on the other
// side of the date line from the fake clock's UTC+05:45.
const farZone = "Pacific/Kiritimati"

// TestConformanceFarTimeZone runs the suite again with every connection's
// TimeZone set far from UTC: the store's times must not depend on it.
func TestConformanceFarTimeZone(t *testing.T) {
	dsn := withParam(testDSN(t), "timezone", farZone)
	db := openDB(t, dsn)
	var tz string
	if err := db.GetContext(context.Background(), &tz, "SHOW TimeZone"); err != nil || tz != farZone {
		t.Fatalf("connections opened with %q show TimeZone %q (%v)", dsn, tz, err)
	}
	conformance.Run(t, harness(t, dsn))
}

func BenchmarkConformance(b *testing.B) {
	conformance.RunBenchmarks(b, harness(b, testDSN(b)))
}

// TestPgxErrors checks, over pgx, what the store reads from the driver's
// errors without importing it: the SQLSTATE of a unique violation, a
// cancellation while the server works, and a connection that cannot be
// made.
func TestPgxErrors(t *testing.T) {
	dsn := testDSN(t)
	ctx := ctxT(t)
	s := newStore(t, openPgx(t, dsn), WithSchema(newSchema(t)))
	r := rec("v", t0)
	r.Owner = "o1"
	mustCreate(t, s, "k", r)
	err := s.Create(ctx, "k", rec("again", t0))
	var pe *pgconn.PgError
	if !errors.Is(err, session.ErrExists) || !errors.As(err, &pe) || pe.Code != "23505" {
		t.Fatalf("second Create over pgx = %v, want ErrExists wrapping the *pgconn.PgError", err)
	}
	if recs, err := s.LoadOwned(ctx, "o1"); err != nil || len(recs) != 1 || recs[0].Key != "k" || recs[0].Record.Owner != "o1" {
		t.Fatalf("LoadOwned over pgx = %+v, %v", recs, err)
	}

	// Cancelled while waiting for a row lock. pgx's default reaction to a
	// cancelled context is to close the connection, without telling the
	// server: the statement then still runs once the lock is free, so
	// the outcome of a cancelled write is unknown (as for any write that
	// returns an error). With pgconn's CancelRequestContextWatcherHandler
	// pgx asks the server to cancel the statement, as lib/pq does.
	if got, err := cancelMidUpdate(t, s); !errors.Is(err, context.Canceled) ||
		!(got.Version == 1 && string(got.Data) == "v" || got.Version == 2 && string(got.Data) == "late") {
		t.Fatalf("Update cancelled mid-query over pgx = %v, then %q v%d; want context.Canceled, and the record untouched or updated", err, got.Data, got.Version)
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 10 * time.Second}
	}
	db := sqlx.NewDb(stdlib.OpenDB(*cfg), "pgx")
	t.Cleanup(func() { _ = db.Close() })
	sc, err := New(ctx, db, WithSchema(s.schema))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	before := mustLoad(t, sc, "k")
	if got, err := cancelMidUpdate(t, sc); !errors.Is(err, context.Canceled) || got.Version != before.Version || sqlState(err) != "57014" {
		t.Fatalf("Update cancelled mid-query over pgx with cancel requests = %v, then v%d; want context.Canceled beside query_canceled, and the record untouched", err, got.Version)
	}

	_, err = New(ctx, openPgx(t, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5"))
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: connect: ") {
		t.Fatalf("New over pgx to a closed port = %v, want a connect error", err)
	}
	_, err = New(ctx, openPgx(t, withDatabase(dsn, "wst_none_"+randHex(4))))
	if err == nil || !strings.HasPrefix(err.Error(), "postgres: connect: ") || sqlState(err) != "3D000" {
		t.Fatalf("New over pgx to a missing database = %v, want a connect error with SQLSTATE 3D000", err)
	}
}

// cancelMidUpdate runs an Update of "k" (expecting its current version)
// that blocks on a row lock held by the test, cancels its context while it
// waits, releases the lock, waits until the Update's server backend is
// done, and returns the record afterwards and what the Update returned.
func cancelMidUpdate(t *testing.T, s *Store) (session.Record, error) {
	t.Helper()
	ctx := ctxT(t)
	cur := mustLoad(t, s, "k")
	tx := admin(t).MustBegin()
	defer func() { _ = tx.Rollback() }()
	var holder int
	if err := tx.Get(&holder, `SELECT pg_backend_pid() FROM `+s.Table()+` WHERE session_id = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Update(cctx, "k", session.Record{Data: []byte("late"), ATime: t0, Version: cur.Version})
	}()
	blocked := waitBlocked(t, holder)
	cancel()
	err := <-done
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	// The backend either went idle (its statement cancelled or done) or
	// left with its connection.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var busy bool
		if err := admin(t).GetContext(ctx, &busy, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND state = 'active')`, blocked); err != nil {
			t.Fatal(err)
		}
		if !busy {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("backend %d still running the cancelled Update", blocked)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's state
	}
	return mustLoad(t, s, "k"), err
}
