package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	session "github.com/websession/websession/core"
)

// createTableSQL is the table the store needs, for CreateTable and the
// README. %s is the quoted table name.
//
// Differences from web.py's sessions(session_id, atime, data) and why:
//   - session_id VARBINARY(128): compared byte for byte, so keys are
//     case-sensitive (a CHAR in the default collation is not), and a
//     PRIMARY KEY rather than UNIQUE, so InnoDB clusters rows by it.
//   - atime DATETIME(6): microseconds, UTC by contract. TIMESTAMP ends in
//     2038 and is converted through the session time_zone; there is no
//     DEFAULT because every time comes from the application's clock.
//   - data LONGBLOB: bytes, not base64 in TEXT (which stops at 64 KiB and
//     rejects or alters bytes that are not valid text).
//   - created and version: the Store contract's absolute lifetime and
//     compare-and-swap.
//   - owner: see ownerColumn.
//   - an index on atime for Cleanup, one on owner for LoadOwned.
const createTableSQL = `CREATE TABLE IF NOT EXISTS %s (
  session_id VARBINARY(128) NOT NULL,
  atime DATETIME(6) NOT NULL,
  data LONGBLOB NOT NULL,
  created DATETIME(6) NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  ` + ownerColumn + `,
  PRIMARY KEY (session_id),
  KEY idx_atime (atime),
  KEY idx_owner (owner)
) ENGINE=InnoDB`

// ownerColumn is the owner column, in CREATE TABLE and in the migration
// that adds it to a table made before owners existed. Binary, like the
// key, so owners compare byte for byte. NOT NULL with the empty string for
// "no owner", rather than NULL: the empty string is what Record.Owner
// holds for no owner, so the column maps to it with no NULL handling, and
// rows written by an older version of the store (which does not name the
// column) get it by default. Added as the last column it is an instant
// change on MySQL 8 and MariaDB 10.3 and later: no table rebuild.
const ownerColumn = `owner VARBINARY(128) NOT NULL DEFAULT ''`

// Schema returns the SQL of the store's table (CREATE TABLE IF NOT
// EXISTS), for a migration tool or a DBA; CreateTable runs it. A table
// made by an earlier version of the store lacks the owner column and its
// index; CreateTable adds them, and so do these statements:
//
//	ALTER TABLE `sessions` ADD COLUMN owner VARBINARY(128) NOT NULL DEFAULT '';
//	ALTER TABLE `sessions` ADD KEY idx_owner (owner);
func (s *Store) Schema() string { return fmt.Sprintf(createTableSQL, s.quoted) + ";\n" }

// lockWait bounds how long CreateTable waits for another server's
// CreateTable of the same table, when ctx has no deadline.
const lockWait = time.Minute

// CreateTable creates the store's table if it does not exist, adds the
// owner column and its index to a table created by an earlier version of
// the store, keeping its rows (every session stays, with no owner), then
// checks its columns and prepares the statements.
//
// Several servers may run it at the same time: each takes a named lock
// (GET_LOCK) for the table first, so that only one creates or migrates it
// and the others then find it done. The migration is two online changes:
// adding the column is instant (no rebuild), and building the index lets
// requests go on reading and writing the table meanwhile.
//
// If a table of that name exists with columns that would lose data (say
// web.py's, with a TEXT data column), CreateTable leaves it alone and
// returns an error listing what to change.
func (s *Store) CreateTable(ctx context.Context) error {
	const op = "create table"
	if s.closed.Load() {
		return opError(op, session.ErrClosed)
	}
	if err := s.createOrMigrate(ctx, op); err != nil {
		return err
	}
	_, err := s.prepared(ctx, op)
	return err
}

func (s *Store) createOrMigrate(ctx context.Context, op string) error {
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	defer conn.Close()
	// The lock's name: at most 64 characters, so a hash of the table's
	// full name.
	const lockName = "CONCAT('websession:', SHA1(CONCAT(COALESCE(?, DATABASE()), '.', ?)))"
	wait := lockWait
	if d, ok := ctx.Deadline(); ok {
		wait = time.Until(d)
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+lockName+", ?)", s.schemaArg(), s.table, max(1, int(wait.Seconds()))).Scan(&got); err != nil {
		return s.fail(ctx, op+": lock", err)
	}
	if got.Int64 != 1 {
		return opError(op, detailf("another server's CreateTable of %s held its lock for more than %v", s.quoted, wait))
	}
	defer conn.ExecContext(context.Background(), "DO RELEASE_LOCK("+lockName+")", s.schemaArg(), s.table)

	if _, err := conn.ExecContext(ctx, fmt.Sprintf(createTableSQL, s.quoted)); err != nil {
		return s.fail(ctx, op, err)
	}
	cols, err := s.columns(ctx, conn)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	// A table of another shape is reported as it is, not migrated.
	if problems, _ := tableProblems(cols, true); len(problems) > 0 {
		return s.shapeError(op, problems)
	}
	if _, ok := cols["owner"]; !ok {
		if _, err := conn.ExecContext(ctx, "ALTER TABLE "+s.quoted+" ADD COLUMN "+ownerColumn); err != nil {
			return s.fail(ctx, op+": migrate", err)
		}
	}
	var indexed int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND COLUMN_NAME = 'owner' AND SEQ_IN_INDEX = 1`,
		s.schemaArg(), s.table).Scan(&indexed); err != nil {
		return s.fail(ctx, op, err)
	}
	if indexed == 0 {
		if _, err := conn.ExecContext(ctx, "ALTER TABLE "+s.quoted+" ADD KEY idx_owner (owner)"); err != nil {
			return s.fail(ctx, op+": migrate", err)
		}
	}
	return nil
}

// schemaArg is the database to look the table up in: NULL for the
// handle's current one.
func (s *Store) schemaArg() any {
	if s.schema == "" {
		return nil
	}
	return s.schema
}

func quoteTable(schema, table string) string {
	if schema == "" {
		return "`" + table + "`"
	}
	return "`" + schema + "`.`" + table + "`"
}

// column is what the store checks of a column.
type column struct {
	typ, key, collation string
	chars, octets, prec int64
}

// columns reads the table's columns from information_schema.
func (s *Store) columns(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) (map[string]column, error) {
	rows, err := q.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY,
		CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, DATETIME_PRECISION, COLLATION_NAME
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?`,
		s.schemaArg(), s.table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]column{}
	for rows.Next() {
		var (
			name, typ, key      string
			chars, octets, prec sql.NullInt64
			collation           sql.NullString
		)
		if err := rows.Scan(&name, &typ, &key, &chars, &octets, &prec, &collation); err != nil {
			return nil, err
		}
		cols[strings.ToLower(name)] = column{strings.ToLower(typ), key, collation.String, chars.Int64, octets.Int64, prec.Int64}
	}
	return cols, rows.Err()
}

// checkTable verifies the table's columns against what the store needs and
// returns how many bytes the data column holds.
func (s *Store) checkTable(ctx context.Context, op string) (int, error) {
	cols, err := s.columns(ctx, s.db)
	if err != nil {
		return 0, s.fail(ctx, op+": check table", err)
	}
	if len(cols) == 0 {
		where := "the connection's current database"
		if s.schema != "" {
			where = "database `" + s.schema + "`"
		}
		return 0, opError(op, detailf("table %s not found in %s: create it with CreateTable or the SQL of Schema", s.quoted, where))
	}
	problems, capacity := tableProblems(cols, false)
	if len(problems) > 0 {
		return 0, s.shapeError(op, problems)
	}
	return int(min(capacity, int64(s.maxData))), nil
}

func (s *Store) shapeError(op string, problems []string) error {
	return opError(op, detailf("table %s cannot hold sessions safely: %s", s.quoted, strings.Join(problems, "; ")))
}

// tableProblems lists what is wrong with the columns for the store, and
// returns how many bytes the data column holds. The owner column may be
// missing if noOwnerOK (CreateTable then adds it).
func tableProblems(cols map[string]column, noOwnerOK bool) (problems []string, capacity int64) {
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c, ok := cols["session_id"]; !ok {
		bad("no session_id column")
	} else {
		if !isBinary(c) {
			bad("session_id is %s with collation %q, which may compare case-insensitively: use VARBINARY(128)", c.typ, c.collation)
		}
		if c.chars < session.MaxKeyLen {
			bad("session_id holds %d characters, keys need %d", c.chars, session.MaxKeyLen)
		}
		if c.key != "PRI" && c.key != "UNI" {
			bad("session_id is not the primary key")
		}
	}
	if c, ok := cols["data"]; !ok {
		bad("no data column")
	} else {
		switch c.typ {
		case "tinyblob", "blob", "mediumblob", "longblob", "varbinary":
			capacity = c.octets
		default:
			bad("data is %s, which rejects or alters bytes that are not valid text: use LONGBLOB", c.typ)
		}
	}
	for _, name := range []string{"atime", "created"} {
		if c, ok := cols[name]; !ok {
			bad("no %s column", name)
		} else if c.typ != "datetime" || c.prec != 6 {
			bad("%s is %s(%d): use DATETIME(6) (TIMESTAMP converts through the time_zone and ends in 2038)", name, c.typ, c.prec)
		}
	}
	if c, ok := cols["version"]; !ok {
		bad("no version column")
	} else if c.typ != "bigint" {
		bad("version is %s: use BIGINT UNSIGNED", c.typ)
	}
	switch c, ok := cols["owner"]; {
	case !ok && !noOwnerOK:
		bad("no owner column (CreateTable adds it to a table made by an earlier version of the store)")
	case !ok:
	case !isBinary(c) || c.chars < session.MaxKeyLen:
		bad("owner is %s(%d) with collation %q: use VARBINARY(128)", c.typ, c.chars, c.collation)
	}
	return problems, capacity
}

// isBinary reports whether c compares byte for byte.
func isBinary(c column) bool {
	return c.typ == "varbinary" || c.typ == "binary" || c.collation == "binary" || strings.HasSuffix(c.collation, "_bin")
}
