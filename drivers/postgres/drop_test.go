package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

func backendPID(t *testing.T, db *sqlx.DB) int {
	t.Helper()
	var pid int
	if err := db.Get(&pid, `SELECT pg_backend_pid()`); err != nil {
		t.Fatal(err)
	}
	return pid
}

// terminate kills a server backend the way a DBA, a failover or an idle
// timeout would, and waits until it is gone.
func terminate(t *testing.T, pid int) {
	t.Helper()
	var ok bool
	if err := admin(t).Get(&ok, `SELECT pg_terminate_backend($1, 10000)`, pid); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// TestDroppedConnection kills the backend of the store's pooled connection,
// idle and in the middle of a request, and checks what the request sees and
// that the store goes on working with the pool.
//
// database/sql retries a statement on a fresh connection when the driver
// reports the old one bad before a result, and lib/pq does so for a
// terminated backend (its FATAL error or EOF). When that retry can connect,
// the request succeeds; since the killed backend's transaction was rolled
// back by the server, the statement takes effect exactly once. When it
// cannot (the server is going down, or refuses logins), the request gets an
// error carrying the server's cause. Either way the pool recovers.
func TestDroppedConnection(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	ctx := ctxT(t)
	owner := newStore(t, openDB(t, dsn), WithSchema(schema)) // creates the table

	// The store under test logs in as a role of its own, so that the test
	// can refuse its logins without touching anybody else's.
	role := "wsr_" + randHex(6)
	qrole := pq.QuoteIdentifier(role)
	a := admin(t)
	a.MustExec(`CREATE ROLE ` + qrole + ` LOGIN`)
	t.Cleanup(func() {
		a.MustExec(`DROP OWNED BY ` + qrole) // its grants
		a.MustExec(`DROP ROLE ` + qrole)
	})
	a.MustExec(`GRANT USAGE ON SCHEMA ` + pq.QuoteIdentifier(schema) + ` TO ` + qrole)
	a.MustExec(`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + owner.Table() + ` TO ` + qrole)

	db := openDB(t, withUser(dsn, role))
	db.SetMaxOpenConns(1) // one connection: the one the test kills
	s, err := New(ctx, db, WithSchema(schema))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	var user string
	if err := db.Get(&user, `SELECT current_user`); err != nil || user != role {
		t.Fatalf("pool logs in as %q (%v), want %q", user, err, role)
	}
	mustCreate(t, s, "k", rec("v1", t0))

	t.Run("Idle", func(t *testing.T) {
		pid := backendPID(t, db)
		terminate(t, pid)
		if got := mustLoad(t, s, "k"); string(got.Data) != "v1" {
			t.Fatalf("Load after the kill = %+v", got)
		}
		if again := backendPID(t, db); again == pid {
			t.Fatal("the pool still uses the killed backend")
		}
	})

	// updateWhileKilled starts an Update of "k" that blocks on a row lock
	// held by the test, kills the Update's backend while it waits, calls
	// between (if not nil), releases the lock and returns what the Update
	// returned.
	updateWhileKilled := func(t *testing.T, version uint64, between func()) error {
		t.Helper()
		tx := a.MustBeginTx(ctx, nil)
		defer func() { _ = tx.Rollback() }()
		var holder int
		if err := tx.GetContext(ctx, &holder, `SELECT pg_backend_pid() FROM `+s.Table()+` WHERE session_id = 'k' FOR UPDATE`); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			done <- s.Update(ctx, "k", session.Record{Data: []byte("from the killed request"), ATime: t0, Version: version})
		}()
		blocked := waitBlocked(t, holder)
		if between != nil {
			between()
		}
		terminate(t, blocked)
		if between != nil {
			// The retry fails at once: no need to release the lock first.
			return <-done
		}
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
		return <-done
	}

	t.Run("MidRequestRetried", func(t *testing.T) {
		if err := updateWhileKilled(t, 1, nil); err != nil {
			t.Fatalf("Update whose backend was killed, with the server accepting connections = %v", err)
		}
		if got := mustLoad(t, s, "k"); got.Version != 2 || string(got.Data) != "from the killed request" {
			t.Fatalf("after the retried Update: %q v%d, want it applied exactly once (v2)", got.Data, got.Version)
		}
	})

	t.Run("MidRequestError", func(t *testing.T) {
		err := updateWhileKilled(t, 2, func() {
			a.MustExec(`ALTER ROLE ` + qrole + ` NOLOGIN`) // takes effect for new connections only
		})
		a.MustExec(`ALTER ROLE ` + qrole + ` LOGIN`)
		if err == nil {
			t.Fatal("Update whose backend was killed while the server refuses logins succeeded")
		}
		var pe *pq.Error
		if !errors.As(err, &pe) || pe.Code != "28000" { // invalid_authorization_specification
			t.Fatalf("error = %v, want one wrapping the server's refusal (28000)", err)
		}
		t.Logf("the request failed with: %v", err)
		if got := mustLoad(t, s, "k"); got.Version != 2 {
			t.Fatalf("the failed Update changed the record: v%d", got.Version)
		}
		// And the same store, with the same pool, works again.
		if err := s.Update(context.Background(), "k", session.Record{Data: []byte("after"), ATime: t0, Version: 2}); err != nil {
			t.Fatalf("Update after the recovery: %v", err)
		}
		if got := mustLoad(t, s, "k"); got.Version != 3 || string(got.Data) != "after" {
			t.Fatalf("after the recovery: %q v%d", got.Data, got.Version)
		}
	})
}
