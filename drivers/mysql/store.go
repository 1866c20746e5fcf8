package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	session "github.com/websession/websession/core"
)

// statementOverhead is the room kept in max_allowed_packet for everything in
// a write besides the data: command header, statement id, parameter types
// and the key, times and version (under 300 bytes in practice), and for the
// row header when the data is read back.
const statementOverhead = 1024

// deadlockRetries bounds how often a statement that the server rolled back
// as a deadlock victim is run again.
const deadlockRetries = 3

// Store is a session.Store over one MySQL or MariaDB table. It is safe for
// concurrent use. Create it with New or Open.
type Store struct {
	db      *sqlx.DB
	ownsDB  bool   // Open made db: Close closes it
	schema  string // "" means the handle's current database
	table   string // unquoted, validated
	quoted  string // `schema`.`table`, ready for SQL
	batch   int
	maxData int // from max_allowed_packet at construction

	mu     sync.Mutex // serialises preparation and Close
	st     atomic.Pointer[statements]
	closed atomic.Bool
}

// statements are prepared on first use, once the table exists.
type statements struct {
	load, create, update, touch, exists, del, expired, purge, loadOwned *sqlx.Stmt
	maxData                                                             int // maxData lowered to the data column's capacity
}

func (st *statements) close() {
	for _, s := range []*sqlx.Stmt{st.load, st.create, st.update, st.touch, st.exists, st.del, st.expired, st.purge, st.loadOwned} {
		if s != nil {
			s.Close()
		}
	}
}

var (
	_ session.Store              = (*Store)(nil)
	_ session.OwnerIndex         = (*Store)(nil)
	_ interface{ Close() error } = (*Store)(nil)
)

// New returns a Store using db, a *sql.DB or a *sqlx.DB, which must come from
// github.com/go-sql-driver/mysql (or a wrapper of it) with parseTime=true
// and loc=UTC in its DSN. The pool stays the caller's: Close does not close
// it.
//
// New runs one query to check the connection and the handle (see the
// package documentation) and to read max_allowed_packet: it fails with an
// error reading "mysql: connect: ..." when no connection can be made (the
// server unreachable, the login refused). It does not touch the table,
// which need not exist yet.
func New[DB *sql.DB | *sqlx.DB](ctx context.Context, db DB, opts ...Option) (*Store, error) {
	var x *sqlx.DB
	switch h := any(db).(type) {
	case *sql.DB:
		if h != nil {
			x = sqlx.NewDb(h, "mysql")
		}
	case *sqlx.DB:
		if h != nil && h.DB != nil {
			x = h
		}
	}
	if x == nil {
		return nil, opError("new", errors.New("nil database handle"))
	}
	o, err := newOptions(opts, false)
	if err != nil {
		return nil, err
	}
	return newStore(ctx, x, false, o)
}

// Open opens a pool from dsn (the go-sql-driver/mysql format, for example
// "user:pw@tcp(127.0.0.1:3306)/app") and returns a Store that owns it:
// Close closes the pool. Whatever dsn says, Open sets parseTime=true and
// loc=UTC, which the store needs; other parameters (pool-wide system
// variables, timeouts, TLS) are kept. The pool keeps up to DefaultMaxConns
// connections, all of them warm, renewed after DefaultConnMaxLifetime and
// closed when idle for DefaultConnMaxIdleTime (see those constants for the
// reasons, and WithMaxConns, WithConnMaxLifetime and WithConnMaxIdleTime
// to change them). Like New, Open checks the connection at once.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o, err := newOptions(opts, true)
	if err != nil {
		return nil, err
	}
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, opError("open", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return nil, opError("open", err)
	}
	db := sql.OpenDB(conn)
	o.pool.apply(db)
	s, err := newStore(ctx, sqlx.NewDb(db, "mysql"), true, o)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(ctx context.Context, db *sqlx.DB, ownsDB bool, o options) (*Store, error) {
	s := &Store{db: db, ownsDB: ownsDB, schema: o.schema, table: o.table, batch: o.batch}
	s.quoted = quoteTable(s.schema, s.table)
	packet, err := s.checkHandle(ctx)
	if err != nil {
		return nil, err
	}
	s.maxData = packet - statementOverhead
	// Each key of a Cleanup batch costs at most its bytes, a length and a
	// type in the delete's packet.
	if need := s.batch*(session.MaxKeyLen+4) + statementOverhead; need > packet {
		return nil, opError("new", detailf("a cleanup batch of %d keys needs up to %d bytes, more than max_allowed_packet (%d): lower WithCleanupBatch", s.batch, need, packet))
	}
	return s, nil
}

// timeProbe is the instant checkHandle sends and reads back.
var timeProbe = time.Date(2001, time.February, 3, 4, 5, 6, 789012000, time.UTC)

const timeProbeText = "2001-02-03 04:05:06.789012"

// checkHandle proves that the store's handle can connect, reads
// DATETIME(6) into time.Time as UTC and writes time.Time parameters as
// UTC, and returns max_allowed_packet.
func (s *Store) checkHandle(ctx context.Context) (int, error) {
	var (
		read    any
		written string
		packet  int64
	)
	err := s.db.QueryRowContext(ctx,
		"SELECT CAST('"+timeProbeText+"' AS DATETIME(6)), CAST(CAST(? AS DATETIME(6)) AS CHAR), @@max_allowed_packet",
		timeProbe).Scan(&read, &written, &packet)
	if err != nil {
		return 0, s.fail(ctx, "connect", err)
	}
	got, ok := read.(time.Time)
	if !ok {
		return 0, opError("new", detailf("the database handle returns DATETIME as %T, not time.Time: "+
			"add parseTime=true&loc=UTC to the DSN (or set mysql.Config ParseTime=true and Loc=time.UTC), or use mysql.Open", read))
	}
	if !got.Equal(timeProbe) {
		return 0, opError("new", detailf("the database handle reads DATETIME %s as %s, not as UTC: "+
			"set loc=UTC in the DSN (or mysql.Config Loc=time.UTC), or use mysql.Open", timeProbeText, got.Format(time.RFC3339Nano)))
	}
	if written != timeProbeText {
		return 0, opError("new", detailf("the database handle writes %s as %q, not as UTC: "+
			"set loc=UTC in the DSN (or mysql.Config Loc=time.UTC), or use mysql.Open", timeProbe.Format(time.RFC3339Nano), written))
	}
	if packet <= 2*statementOverhead {
		return 0, opError("new", detailf("max_allowed_packet is %d bytes, too small to store sessions", packet))
	}
	return int(packet), nil
}

// DB returns the pool the store uses, for monitoring (Stats) and, for a
// pool the application passed to New, tuning (SetMaxOpenConns and the
// like). Closing it is the job of whoever opened it: the
// caller for New, the Store's Close for Open.
func (s *Store) DB() *sql.DB { return s.db.DB }

// Table returns the quoted table name the store uses in its SQL.
func (s *Store) Table() string { return s.quoted }

// MaxDataSize returns the largest Data the store accepts: the server's
// max_allowed_packet as read at construction, less 1 KiB for the rest of
// the statement, and, once the table has been checked (by CreateTable or
// the first operation), no more than the data column holds. Set the
// manager's session.WithMaxDataSize at or below it; the default 1 MiB is.
func (s *Store) MaxDataSize() int {
	if st := s.st.Load(); st != nil {
		return st.maxData
	}
	return s.maxData
}

// Close releases the prepared statements, and the pool if Open made it.
// Every later call returns an error wrapping session.ErrClosed. Close is
// idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Swap(true) {
		return nil
	}
	if st := s.st.Swap(nil); st != nil {
		st.close()
	}
	if s.ownsDB {
		if err := s.db.Close(); err != nil {
			return opError("close", err)
		}
	}
	return nil
}

// prepared returns the statements, preparing them (and checking the table)
// on first use. A failure is not remembered: the next call tries again, so
// a store created before its table starts working once the table exists.
func (s *Store) prepared(ctx context.Context, op string) (*statements, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, opError(op, session.ErrClosed)
	}
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	colMax, err := s.checkTable(ctx, op)
	if err != nil {
		return nil, err
	}
	st := &statements{maxData: min(s.maxData, colMax)}
	t := s.quoted
	queries := []struct {
		dst **sqlx.Stmt
		sql string
	}{
		{&st.load, "SELECT data, atime, created, version, owner FROM " + t + " WHERE session_id = ?"},
		{&st.create, "INSERT INTO " + t + " (session_id, atime, data, created, version, owner) VALUES (?, ?, ?, ?, 1, ?)"},
		{&st.update, "UPDATE " + t + " SET data = ?, atime = ?, owner = ?, version = version + 1 WHERE session_id = ? AND version = ?"},
		{&st.touch, "UPDATE " + t + " SET atime = ? WHERE session_id = ?"},
		{&st.exists, "SELECT 1 FROM " + t + " WHERE session_id = ?"},
		{&st.del, "DELETE FROM " + t + " WHERE session_id = ?"},
		// Cleanup: see there. The read is covered by the atime index.
		{&st.expired, fmt.Sprintf("SELECT session_id, atime FROM %s WHERE atime >= ? AND atime < ? ORDER BY atime LIMIT %d", t, s.batch)},
		{&st.purge, "DELETE FROM " + t + " WHERE atime < ? AND session_id IN (?" + strings.Repeat(", ?", s.batch-1) + ")"},
		{&st.loadOwned, "SELECT session_id, data, atime, created, version, owner FROM " + t + " WHERE owner = ?"},
	}
	for _, q := range queries {
		stmt, err := s.db.PreparexContext(ctx, q.sql)
		if err != nil {
			st.close()
			return nil, s.fail(ctx, op+": prepare", err)
		}
		*q.dst = stmt
	}
	s.st.Store(st)
	return st, nil
}

// row is a record as scanned by sqlx.
type row struct {
	Data    []byte    `db:"data"`
	ATime   time.Time `db:"atime"`
	Created time.Time `db:"created"`
	Version uint64    `db:"version"`
	Owner   []byte    `db:"owner"`
}

func (r row) record() session.Record {
	if r.Data == nil { // database/sql copied the bytes; only normalise empty
		r.Data = []byte{}
	}
	return session.Record{Data: r.Data, ATime: r.ATime, Created: r.Created, Version: r.Version, Owner: string(r.Owner)}
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	st, err := s.begin(ctx, "load", key)
	if err != nil {
		return session.Record{}, err
	}
	var r row
	err = retry(func() error { return st.load.QueryRowxContext(ctx, key).StructScan(&r) })
	if errors.Is(err, sql.ErrNoRows) {
		return session.Record{}, opError("load", session.ErrNotFound)
	}
	if err != nil {
		return session.Record{}, s.fail(ctx, "load", err)
	}
	return r.record(), nil
}

// Create implements session.Store with one INSERT, which stores the owner
// too.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	const op = "create"
	st, err := s.begin(ctx, op, ownerKeys(key, rec.Owner)...)
	if err != nil {
		return err
	}
	data, err := st.checkData(op, rec.Data)
	if err != nil {
		return err
	}
	atime, err := dbTime(op, "atime", rec.ATime)
	if err != nil {
		return err
	}
	created, err := dbTime(op, "created", rec.Created)
	if err != nil {
		return err
	}
	err = retry(func() error {
		_, err := st.create.ExecContext(ctx, key, atime, data, created, rec.Owner)
		return err
	})
	if err != nil {
		return s.fail(ctx, op, err)
	}
	return nil
}

// Update implements session.Store. It is one UPDATE, which replaces the
// owner along with Data and ATime, when the version matches; only when it
// does not does a second query tell ErrNotFound from ErrConflict. Neither
// path can create a row.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	const op = "update"
	st, err := s.begin(ctx, op, ownerKeys(key, rec.Owner)...)
	if err != nil {
		return err
	}
	data, err := st.checkData(op, rec.Data)
	if err != nil {
		return err
	}
	atime, err := dbTime(op, "atime", rec.ATime)
	if err != nil {
		return err
	}
	// The version always changes, so the server's "changed rows" (the
	// default) and "found rows" (clientFoundRows) are the same here, even
	// for an Update that keeps Data, ATime and the owner.
	n, err := execRows(ctx, st.update, data, atime, rec.Owner, key, rec.Version)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if n == 1 {
		return nil
	}
	switch ok, err := rowExists(ctx, st, key); {
	case err != nil:
		return s.fail(ctx, op, err)
	case !ok:
		return opError(op, session.ErrNotFound)
	}
	// Whatever the version is now (even rec.Version again, if the row was
	// deleted and re-created meanwhile), the row was not the one the caller
	// read.
	return opError(op, session.ErrConflict, detailf("stored version is not %d", rec.Version))
}

// rowExists tells whether key has a row: the second query that only the
// zero-rows path of Update and Touch pays.
func rowExists(ctx context.Context, st *statements, key string) (bool, error) {
	var one int
	err := retry(func() error { return st.exists.QueryRowxContext(ctx, key).Scan(&one) })
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// execRows runs a prepared statement (retrying deadlocks, see retry) and
// returns how many rows it changed.
func execRows(ctx context.Context, stmt *sqlx.Stmt, args ...any) (int64, error) {
	var n int64
	err := retry(func() error {
		res, err := stmt.ExecContext(ctx, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// Touch implements session.Store with one UPDATE of atime, which keeps
// the owner.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	const op = "touch"
	st, err := s.begin(ctx, op, key)
	if err != nil {
		return err
	}
	at, err := dbTime(op, "atime", atime)
	if err != nil {
		return err
	}
	n, err := execRows(ctx, st.touch, at, key)
	if err != nil {
		return s.fail(ctx, op, err)
	}
	if n == 1 {
		return nil
	}
	// Zero rows changed: either no row, or (without clientFoundRows) the row
	// already had this atime.
	switch ok, err := rowExists(ctx, st, key); {
	case err != nil:
		return s.fail(ctx, op, err)
	case !ok:
		return opError(op, session.ErrNotFound)
	}
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	st, err := s.begin(ctx, "delete", key)
	if err != nil {
		return err
	}
	err = retry(func() error {
		_, err := st.del.ExecContext(ctx, key)
		return err
	})
	if err != nil {
		return s.fail(ctx, "delete", err)
	}
	return nil
}

// checkData refuses data that cannot be stored whole, before any I/O, and
// turns nil into empty (nil would be sent as NULL).
func (st *statements) checkData(op string, data []byte) ([]byte, error) {
	if len(data) > st.maxData {
		return nil, opError(op, session.ErrTooLarge, detailf("%d bytes of session data, more than the %d this store can hold "+
			"(max_allowed_packet and the data column's size)", len(data), st.maxData))
	}
	if data == nil {
		return []byte{}, nil
	}
	return data, nil
}

// DATETIME's range. Outside it a strict server refuses the value and a
// non-strict one stores zeros, so such times are refused here.
var (
	minTime = time.Date(1000, time.January, 1, 0, 0, 0, 0, time.UTC)
	maxTime = time.Date(9999, time.December, 31, 23, 59, 59, 999999000, time.UTC)
)

// dbTime converts t to what the DATETIME(6) columns hold: UTC, truncated to
// the microsecond (the server rounds extra digits, which could move a time
// into the future).
func dbTime(op, what string, t time.Time) (time.Time, error) {
	u := t.UTC().Truncate(time.Microsecond)
	if u.Before(minTime) || u.After(maxTime) {
		return time.Time{}, opError(op, detailf("%s %s is outside DATETIME's range (years 1000 to 9999)", what, t.Format(time.RFC3339Nano)))
	}
	return u, nil
}

// retry runs f again when the server rolled its statement back as a
// deadlock victim. Each statement runs alone in autocommit mode, so the
// rolled-back attempt left nothing behind.
func retry(f func() error) error {
	var err error
	for range deadlockRetries {
		err = f()
		if !isServerError(err, erDeadlock) {
			return err
		}
	}
	return err
}
