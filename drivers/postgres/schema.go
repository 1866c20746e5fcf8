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

// Index name suffixes: "<table>_atime_idx", "<table>_owner_idx".
const (
	atimeIndexSuffix = "_atime_idx"
	ownerIndexSuffix = "_owner_idx"
)

// columns are the columns the statements need, with the type
// format_type() reports for each.
var columns = []struct{ name, typ string }{
	{"session_id", "text"},
	{"data", "bytea"},
	{"atime", "timestamp with time zone"},
	{"created", "timestamp with time zone"},
	{"version", "bigint"},
	{"owner", "text"},
}

// ownerType is the owner column's definition, in CREATE TABLE and in the
// migration that adds it to a table made before owners existed.
//
// NOT NULL with the empty string for "no owner", rather than NULL: the
// empty string is what Record.Owner holds for no owner, so the column maps
// to it directly with no NULL handling, and rows written by an older
// version of the store (which does not name the column) get it by default.
// Adding a NOT NULL column with a constant default changes only the
// catalog (PostgreSQL 11 and later): no table rewrite, however many rows. No CHECK on its length:
// adding one would scan the whole table under an exclusive lock, and the
// store validates owner keys before any statement anyway.
const ownerType = `text COLLATE "C" NOT NULL DEFAULT ''`

// ddl is the SQL of the table and its indexes, statement by statement.
func (s *Store) ddl() (createTable, addOwner, atimeIndex, ownerIndex string) {
	createTable = `CREATE TABLE IF NOT EXISTS ` + s.qtable + ` (
    session_id text COLLATE "C" NOT NULL PRIMARY KEY
               CHECK (octet_length(session_id) BETWEEN 1 AND 128),
    data       bytea       NOT NULL,
    atime      timestamptz NOT NULL,
    created    timestamptz NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 1),
    owner      ` + ownerType + `
)`
	addOwner = `ALTER TABLE ` + s.qtable + ` ADD COLUMN IF NOT EXISTS owner ` + ownerType
	atimeIndex = `CREATE INDEX IF NOT EXISTS ` + pq.QuoteIdentifier(s.table+atimeIndexSuffix) + ` ON ` + s.qtable + ` (atime)`
	ownerIndex = `CREATE INDEX IF NOT EXISTS ` + pq.QuoteIdentifier(s.table+ownerIndexSuffix) + ` ON ` + s.qtable + ` (owner) WHERE owner <> ''`
	return
}

// Schema returns the SQL that creates the store's table and its indexes if
// they are missing, and adds the owner column to a table made by an
// earlier version, for a migration tool or a DBA. Every statement is
// idempotent. CreateTable runs the same statements, only those needed.
//
// The key is text in the "C" collation: keys are ASCII, so byte order is
// the right order, compares are plain memcmp, and no locale can fold case.
// The CHECK allows the contract's 1 to 128 bytes. Times are timestamptz: a
// timestamp without time zone would silently drop the offset of every
// value not sent in UTC. The index on atime serves Cleanup; the index on
// owner serves LoadOwned and holds only the rows that have an owner, so
// anonymous sessions cost it nothing.
func (s *Store) Schema() string {
	createTable, addOwner, atimeIndex, ownerIndex := s.ddl()
	return createTable + ";\n" + addOwner + ";\n" + atimeIndex + ";\n" + ownerIndex + ";\n"
}

// CreateTable creates the table and its indexes if they are missing (see
// Schema), adds the owner column and its index to a table created by an
// earlier version of the store, keeping its rows (every session stays,
// with no owner), then checks that the table has the columns the store
// needs, so that a table of another shape, such as web.py's, is reported
// here rather than by the first request. The schema (WithSchema) must
// exist.
//
// Several servers may call it at once at start-up: CREATE TABLE IF NOT
// EXISTS alone can still fail when two sessions race to create the same
// table (a unique violation on the catalog), and two migrations must not
// both add the column, so everything runs in one transaction under a
// transaction-scoped advisory lock that serialises them. The catalog is
// read first and only the missing pieces are created: on a table already
// in shape CreateTable takes no lock on it at all. The migration holds an
// exclusive lock on the table only for the catalog change, and then, to
// build the owner index, a lock that holds writes off for the time it takes
// to read the table once (about a second per million rows; the index is
// empty since no session has an owner yet).
func (s *Store) CreateTable(ctx context.Context) error {
	const op = "create table"
	if s.closed.Load() {
		return opError(op, session.ErrClosed)
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1, $2)`, lockClass, lockObj); err != nil {
		return s.fail(ctx, op+": lock", err)
	}
	createTable, addOwner, atimeIndex, ownerIndex := s.ddl()
	var exists bool
	if err := tx.GetContext(ctx, &exists, `SELECT to_regclass($1) IS NOT NULL`, s.qtable); err != nil {
		return s.fail(ctx, op, err)
	}
	todo := []string{createTable, atimeIndex, ownerIndex}
	if exists {
		have, indexes, err := s.catalog(ctx, tx)
		if err != nil {
			return err
		}
		// A table of another shape is reported as it is, not migrated.
		if bad := shapeProblems(have, true); len(bad) > 0 {
			return s.shapeError(bad)
		}
		todo = todo[:0]
		if _, ok := have["owner"]; !ok {
			todo = append(todo, addOwner)
		}
		if !indexes[s.table+atimeIndexSuffix] {
			todo = append(todo, atimeIndex)
		}
		if !indexes[s.table+ownerIndexSuffix] {
			todo = append(todo, ownerIndex)
		}
	}
	for _, q := range todo {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return s.fail(ctx, op, err)
		}
	}
	if len(todo) > 0 {
		have, _, err := s.catalog(ctx, tx)
		if err != nil {
			return err
		}
		if bad := shapeProblems(have, false); len(bad) > 0 {
			return s.shapeError(bad)
		}
	}
	if err := tx.Commit(); err != nil {
		return s.fail(ctx, op+": commit", err)
	}
	return nil
}

// shapeProblems lists how the columns have differ from those the store
// needs; the owner column may be missing if noOwnerOK (CreateTable then
// adds it).
func shapeProblems(have map[string]string, noOwnerOK bool) []string {
	var bad []string
	for _, c := range columns {
		switch got, ok := have[c.name]; {
		case !ok && c.name == "owner" && noOwnerOK:
		case !ok:
			bad = append(bad, fmt.Sprintf("no column %s (%s)", c.name, c.typ))
		case got != c.typ:
			bad = append(bad, fmt.Sprintf("column %s is %s, want %s", c.name, got, c.typ))
		}
	}
	return bad
}

func (s *Store) shapeError(bad []string) error {
	return opError("create table", detailf("table %s exists with another shape: %s (see the README for migrating from web.py's table)",
		s.qtable, strings.Join(bad, "; ")))
}

// catalog returns the table's columns (name to type) and the names of its
// indexes.
func (s *Store) catalog(ctx context.Context, tx interface {
	SelectContext(ctx context.Context, dest any, query string, args ...any) error
}) (map[string]string, map[string]bool, error) {
	var cols []struct {
		Name string `db:"attname"`
		Type string `db:"typ"`
	}
	if err := tx.SelectContext(ctx, &cols, `SELECT attname, format_type(atttypid, atttypmod) AS typ
FROM pg_attribute WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped`, s.qtable); err != nil {
		return nil, nil, s.fail(ctx, "create table: columns", err)
	}
	var idx []string
	if err := tx.SelectContext(ctx, &idx, `SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = $1::regclass`, s.qtable); err != nil {
		return nil, nil, s.fail(ctx, "create table: indexes", err)
	}
	have := make(map[string]string, len(cols))
	for _, c := range cols {
		have[c.Name] = c.Type
	}
	indexes := make(map[string]bool, len(idx))
	for _, name := range idx {
		indexes[name] = true
	}
	return have, indexes, nil
}
