package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

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
//   - an index on atime for Cleanup.
const createTableSQL = `CREATE TABLE IF NOT EXISTS %s (
  session_id VARBINARY(128) NOT NULL,
  atime DATETIME(6) NOT NULL,
  data LONGBLOB NOT NULL,
  created DATETIME(6) NOT NULL,
  version BIGINT UNSIGNED NOT NULL,
  PRIMARY KEY (session_id),
  KEY idx_atime (atime)
) ENGINE=InnoDB`

// CreateTable creates the store's table if it does not exist, then checks
// its columns and prepares the statements. Several servers may run it at
// the same time: the server serialises CREATE TABLE IF NOT EXISTS on the
// table's metadata lock, and all but the first find the table there.
//
// If a table of that name exists with columns that would lose data (say
// web.py's, with a TEXT data column), CreateTable leaves it alone and
// returns an error listing what to change.
func (s *Store) CreateTable(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("mysql: %w", session.ErrClosed)
	}
	if _, err := s.db.ExecContext(ctx, fmt.Sprintf(createTableSQL, s.quoted)); err != nil {
		return s.fail("create table", err)
	}
	_, err := s.prepared(ctx)
	return err
}

// parseTableName splits "db.table" or "table" and validates each part.
func parseTableName(name string) (schema, table string, err error) {
	table = name
	if i := strings.IndexByte(name, '.'); i >= 0 {
		schema, table = name[:i], name[i+1:]
		if !validIdent(schema) {
			return "", "", fmt.Errorf("mysql: invalid database name %q in table %q: want 1 to 64 characters of [A-Za-z0-9_$]", schema, name)
		}
	}
	if !validIdent(table) {
		return "", "", fmt.Errorf("mysql: invalid table name %q: want 1 to 64 characters of [A-Za-z0-9_$], optionally qualified as db.table", name)
	}
	return schema, table, nil
}

// validIdent accepts the identifiers MySQL allows unquoted, minus the
// non-ASCII ones: nothing in them can end a backquoted name.
func validIdent(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '$') {
			return false
		}
	}
	return true
}

func quoteTable(schema, table string) string {
	if schema == "" {
		return "`" + table + "`"
	}
	return "`" + schema + "`.`" + table + "`"
}

// checkTable verifies the table's columns against what the store needs and
// returns how many bytes the data column holds.
func (s *Store) checkTable(ctx context.Context) (int, error) {
	var schema any // NULL: the handle's current database
	if s.schema != "" {
		schema = s.schema
	}
	rows, err := s.db.QueryContext(ctx, `SELECT COLUMN_NAME, DATA_TYPE, COLUMN_KEY,
		CHARACTER_MAXIMUM_LENGTH, CHARACTER_OCTET_LENGTH, DATETIME_PRECISION, COLLATION_NAME
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?`,
		schema, s.table)
	if err != nil {
		return 0, wrap("check table", err)
	}
	defer rows.Close()
	type column struct {
		typ, key, collation string
		chars, octets, prec int64
	}
	cols := map[string]column{}
	for rows.Next() {
		var (
			name, typ, key      string
			chars, octets, prec sql.NullInt64
			collation           sql.NullString
		)
		if err := rows.Scan(&name, &typ, &key, &chars, &octets, &prec, &collation); err != nil {
			return 0, wrap("check table", err)
		}
		cols[strings.ToLower(name)] = column{strings.ToLower(typ), key, collation.String, chars.Int64, octets.Int64, prec.Int64}
	}
	if err := rows.Err(); err != nil {
		return 0, wrap("check table", err)
	}
	if len(cols) == 0 {
		where := "the connection's current database"
		if s.schema != "" {
			where = "database `" + s.schema + "`"
		}
		return 0, fmt.Errorf("mysql: table %s not found in %s: create it with CreateTable or the SQL in the README", s.quoted, where)
	}
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if c, ok := cols["session_id"]; !ok {
		bad("no session_id column")
	} else {
		if !(c.typ == "varbinary" || c.typ == "binary" || c.collation == "binary" || strings.HasSuffix(c.collation, "_bin")) {
			bad("session_id is %s with collation %q, which may compare case-insensitively: use VARBINARY(128)", c.typ, c.collation)
		}
		if c.chars < session.MaxKeyLen {
			bad("session_id holds %d characters, keys need %d", c.chars, session.MaxKeyLen)
		}
		if c.key != "PRI" && c.key != "UNI" {
			bad("session_id is not the primary key")
		}
	}
	capacity := int64(0)
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
	if len(problems) > 0 {
		return 0, errors.New("mysql: table " + s.quoted + " cannot hold sessions safely: " + strings.Join(problems, "; "))
	}
	return int(min(capacity, int64(s.maxData))), nil
}
