package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/jmoiron/sqlx"
	session "github.com/websession/websession/core"
)

var errNilOption = errors.New("nil Option")

// opError is the one shape of every error the store returns:
// "postgres: <op>: <cause>[: <cause>...]", each cause wrapped, so that
// errors.Is reaches the session sentinels and the context's errors, and
// errors.As the database driver's own error values. A session sentinel,
// when one applies, comes first; the driver's error follows it.
func opError(op string, causes ...error) error {
	args := make([]any, len(causes))
	for i, c := range causes {
		args[i] = c
	}
	return fmt.Errorf("postgres: "+op+strings.Repeat(": %w", len(causes)), args...)
}

// detail is text that explains an error (the sizes, the versions, what to
// do) without being a condition of its own to test for.
type detail string

func (d detail) Error() string { return string(d) }

func detailf(format string, args ...any) error { return detail(fmt.Sprintf(format, args...)) }

// begin is the common start of every operation: refuse use after Close,
// end at once on a context already done, refuse malformed keys (and owner
// keys), and fetch the prepared statement.
func (s *Store) begin(ctx context.Context, op string, l *lazyStmt, keys ...string) (*sqlx.Stmt, error) {
	if s.closed.Load() {
		return nil, opError(op, session.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return nil, opError(op, err)
	}
	for _, key := range keys {
		if !session.ValidKey(key) {
			// Defence in depth: keys are bound parameters anyway, but a
			// key the manager cannot produce means a bug or an attack
			// upstream.
			return nil, opError(op, session.ErrInvalidKey, detailf("%d bytes", len(key)))
		}
	}
	st, err := s.prepared(ctx, l)
	if err != nil {
		if code := sqlState(err); code == "42P01" || code == "42703" { // undefined_table, undefined_column
			return nil, opError(op+": prepare", err, detail("CreateTable creates the table, or migrates one made by an earlier version"))
		}
		return nil, s.fail(ctx, op+": prepare", err)
	}
	return st, nil
}

// fail turns err, from the database driver, into the store's error for
// op: with the context's error beside it when the context ended (lib/pq
// may report the server's "canceling statement due to user request"
// instead), with session.ErrClosed when the store was closed under the
// call, with session.ErrExists for a unique violation, and marked
// "connect" when the cause is that no connection could be made, so that a
// refused login never reads as a problem with the table.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return opError(op, cerr, err)
	}
	if s.closed.Load() && !errors.Is(err, session.ErrClosed) {
		return opError(op, session.ErrClosed, err)
	}
	if sqlState(err) == "23505" { // unique_violation: the key is taken
		return opError(op, session.ErrExists, err)
	}
	if op != "connect" && isConnectError(err) {
		op += ": connect"
	}
	return opError(op, err)
}

// sqlState returns the SQLSTATE of the server error in err's chain. It
// asks for the SQLState method that both lib/pq's *pq.Error and pgx's
// *pgconn.PgError have, so the store works over either driver without
// importing them.
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// isConnectError reports whether err says that no connection could be
// made: the server unreachable, or refusing this client's login.
func isConnectError(err error) bool {
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	code := sqlState(err)
	switch {
	case strings.HasPrefix(code, "08"), // connection_exception
		strings.HasPrefix(code, "28"), // invalid_authorization_specification, invalid_password
		code == "3D000",               // invalid_catalog_name: no such database
		code == "53300",               // too_many_connections
		code == "57P03":               // cannot_connect_now: starting up or shutting down
		return true
	}
	return false
}
