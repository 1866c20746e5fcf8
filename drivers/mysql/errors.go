package mysql

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	mysqldrv "github.com/go-sql-driver/mysql"
	session "github.com/websession/websession/core"
)

// Server error numbers the store reacts to (the same in MySQL and MariaDB).
const (
	erAccessDenied       = 1045 // ER_ACCESS_DENIED_ERROR: login refused
	erConCount           = 1040 // ER_CON_COUNT_ERROR: too many connections
	erDupEntry           = 1062 // ER_DUP_ENTRY: Create found the key taken
	erTooBigRowsize      = 1118 // ER_TOO_BIG_ROWSIZE: includes MySQL's "BLOB larger than 10% of the redo log"
	erNetPacketTooLarge  = 1153 // ER_NET_PACKET_TOO_LARGE: more than max_allowed_packet
	erUserLimitReached   = 1226 // ER_USER_LIMIT_REACHED: max_user_connections and the like
	erTooManyUserConns   = 1203 // ER_TOO_MANY_USER_CONNECTIONS
	erDeadlock           = 1213 // ER_LOCK_DEADLOCK: statement rolled back, safe to run again
	erPacketOverflowed   = 1301 // ER_WARN_ALLOWED_PACKET_OVERFLOWED
	erDataTooLong        = 1406 // ER_DATA_TOO_LONG: a strict server refusing to truncate
	erAccountLocked      = 3118 // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
	erMariaAccountLocked = 4151 // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)
	erHostNotPrivileged  = 1130 // ER_HOST_NOT_PRIVILEGED
	erHostIsBlocked      = 1129 // ER_HOST_IS_BLOCKED
	erServerShutdown     = 1053 // ER_SERVER_SHUTDOWN
	erMustChangePassword = 1820 // ER_MUST_CHANGE_PASSWORD_LOGIN
)

// opError is the one shape of every error the store returns:
// "mysql: <op>: <cause>[: <cause>...]", each cause wrapped, so that
// errors.Is reaches the session sentinels and the context's errors, and
// errors.As the driver's *mysql.MySQLError. A session sentinel, when one
// applies, comes first; the driver's error follows it.
func opError(op string, causes ...error) error {
	args := make([]any, len(causes))
	for i, c := range causes {
		args[i] = c
	}
	return fmt.Errorf("mysql: "+op+strings.Repeat(": %w", len(causes)), args...)
}

// detail is text that explains an error (the sizes, what to do) without
// being a condition of its own to test for.
type detail string

func (d detail) Error() string { return string(d) }

func detailf(format string, args ...any) error { return detail(fmt.Sprintf(format, args...)) }

// begin is the common start of every operation: refuse use after Close,
// end at once on a context already done, refuse malformed keys (and owner
// keys), and fetch the prepared statements.
func (s *Store) begin(ctx context.Context, op string, keys ...string) (*statements, error) {
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
	return s.prepared(ctx, op)
}

// fail turns err, from the database driver, into the store's error for
// op: with the context's error beside it when the context ended, with
// session.ErrClosed when the store was closed under the call (a statement
// closed under it), with the session sentinel a server error stands for
// (ErrExists, ErrTooLarge), and marked "connect" when the cause is that no
// connection could be made, so that a refused login never reads as a
// problem with the table.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return opError(op, cerr, err)
	}
	if s.closed.Load() && !errors.Is(err, session.ErrClosed) {
		return opError(op, session.ErrClosed, err)
	}
	var me *mysqldrv.MySQLError
	if errors.As(err, &me) {
		switch me.Number {
		case erDupEntry:
			return opError(op, session.ErrExists, err)
		case erTooBigRowsize, erNetPacketTooLarge, erPacketOverflowed, erDataTooLong:
			return opError(op, session.ErrTooLarge, err)
		}
	}
	if op != "connect" && isConnectError(err) {
		op += ": connect"
	}
	return opError(op, err)
}

// isServerError reports whether err carries server error number.
func isServerError(err error, number uint16) bool {
	var me *mysqldrv.MySQLError
	return errors.As(err, &me) && me.Number == number
}

// isConnectError reports whether err says that no connection could be
// made: the server unreachable, or refusing this client's login.
func isConnectError(err error) bool {
	if oe := (*net.OpError)(nil); errors.As(err, &oe) && oe.Op == "dial" {
		return true
	}
	var me *mysqldrv.MySQLError
	if !errors.As(err, &me) {
		return false
	}
	// SQLSTATE classes 08 (connection exception) and 28 (invalid
	// authorization: 1045, and MariaDB's 1698 for a login without the
	// password it needs).
	if c := string(me.SQLState[:2]); c == "08" || c == "28" {
		return true
	}
	switch me.Number {
	// Not 1044 and 1049 (no access to, no such database): a statement
	// naming another database (WithSchema) gets those too.
	case erAccessDenied, erConCount, erUserLimitReached, erTooManyUserConns,
		erAccountLocked, erMariaAccountLocked, erHostNotPrivileged, erHostIsBlocked, erServerShutdown, erMustChangePassword:
		return true
	}
	return false
}
