package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// The advisory lock CreateTable holds: a fixed two-key lock ('WS', 'pg'),
// a key space apart from the single-bigint locks applications usually take.
const (
	lockClass = 0x5753 // "WS"
	lockObj   = 0x7067 // "pg"
)

// columns are the columns the statements need, with the type
// format_type() reports for each.
var columns = []struct{ name, typ string }{
	{"session_id", "text"},
	{"data", "bytea"},
	{"atime", "timestamp with time zone"},
	{"created", "timestamp with time zone"},
	{"version", "bigint"},
}

// Schema returns the SQL that creates the store's table and its index on
// atime if they are missing, for a migration tool or a DBA. CreateTable
// runs the same statements.
//
// The key is text in the "C" collation: keys are ASCII, so byte order is
// the right order, compares are plain memcmp, and no locale can fold case.
// The CHECK allows the contract's 1 to 128 bytes. Times are timestamptz: a
// timestamp without time zone would silently drop the offset of every
// value not sent in UTC.
func (s *Store) Schema() string {
	idx := pq.QuoteIdentifier(s.table + indexSuffix)
	return `CREATE TABLE IF NOT EXISTS ` + s.qtable + ` (
    session_id text COLLATE "C" NOT NULL PRIMARY KEY
               CHECK (octet_length(session_id) BETWEEN 1 AND 128),
    data       bytea       NOT NULL,
    atime      timestamptz NOT NULL,
    created    timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 1)
);
CREATE INDEX IF NOT EXISTS ` + idx + ` ON ` + s.qtable + ` (atime);
`
}

// CreateTable creates the table and its index on atime if they are missing
// (see Schema), then checks that the table has the columns the store
// needs, so that a table of another shape, such as web.py's, is reported
// here rather than by the first request. The schema (WithSchema) must
// exist.
//
// Several servers may call it at once at start-up: CREATE TABLE IF NOT
// EXISTS alone can still fail when two sessions race to create the same
// table (a unique violation on the catalog), so the statements run in one
// transaction under a transaction-scoped advisory lock that serialises
// them.
func (s *Store) CreateTable(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("postgres: create table: %w", session.ErrClosed)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.fail(ctx, "create table", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockClass, lockObj); err != nil {
		return s.fail(ctx, "create table: lock", err)
	}
	// No parameters: the simple query protocol runs both statements in one
	// message, within the transaction.
	if _, err := tx.ExecContext(ctx, s.Schema()); err != nil {
		return s.fail(ctx, "create table", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT attname, format_type(atttypid, atttypmod)
FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, s.qtable)
	if err != nil {
		return s.fail(ctx, "create table: columns", err)
	}
	have := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			_ = rows.Close()
			return s.fail(ctx, "create table: columns", err)
		}
		have[name] = typ
	}
	if err := rows.Err(); err != nil {
		return s.fail(ctx, "create table: columns", err)
	}
	var bad []string
	for _, c := range columns {
		switch got, ok := have[c.name]; {
		case !ok:
			bad = append(bad, fmt.Sprintf("no column %s (%s)", c.name, c.typ))
		case got != c.typ:
			bad = append(bad, fmt.Sprintf("column %s is %s, want %s", c.name, got, c.typ))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("postgres: create table: table %s exists with another shape: %s (see the README for migrating from web.py's table)",
			s.qtable, strings.Join(bad, "; "))
	}
	if err := tx.Commit(); err != nil {
		return s.fail(ctx, "create table: commit", err)
	}
	return nil
}
