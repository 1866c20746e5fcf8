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

// DefaultTable is the table name used without WithTable: web.py's.
const DefaultTable = "sessions"

// DefaultCleanupBatch is the number of rows one Cleanup batch deletes
// without WithCleanupBatch. Small enough that each delete holds its row
// locks for milliseconds, large enough that a million expired rows take a
// thousand batches rather than a million.
const DefaultCleanupBatch = 1000

// MaxCleanupBatch bounds WithCleanupBatch: a batch's keys are the parameters
// of one prepared statement, which must fit in max_allowed_packet.
const MaxCleanupBatch = 10000

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
	owned   bool   // Open made db: Close closes it
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
	load, create, update, touch, exists, del, expired, purge *sqlx.Stmt
	maxData                                                  int // maxData lowered to the data column's capacity
}

func (st *statements) close() {
	for _, s := range []*sqlx.Stmt{st.load, st.create, st.update, st.touch, st.exists, st.del, st.expired, st.purge} {
		if s != nil {
			s.Close()
		}
	}
}

var (
	_ session.Store              = (*Store)(nil)
	_ interface{ Close() error } = (*Store)(nil)
)

// An Option configures a Store.
type Option func(*Store) error

// WithTable sets the table's name, default DefaultTable. It may be
// qualified by a database name ("db.sessions"); otherwise the handle's
// current database is used. Each part must be 1 to 64 characters of
// [A-Za-z0-9_$]; the name is always quoted in SQL, never spliced raw.
func WithTable(name string) Option {
	return func(s *Store) error {
		schema, table, err := parseTableName(name)
		if err != nil {
			return err
		}
		s.schema, s.table = schema, table
		return nil
	}
}

// WithCleanupBatch sets how many rows one Cleanup batch deletes at most,
// from 1 to MaxCleanupBatch, default DefaultCleanupBatch. Cleanup repeats
// batches until one comes back short, so the value bounds how long each
// delete holds locks, not how many rows a Cleanup deletes.
func WithCleanupBatch(n int) Option {
	return func(s *Store) error {
		if n < 1 || n > MaxCleanupBatch {
			return fmt.Errorf("mysql: cleanup batch must be between 1 and %d, got %d", MaxCleanupBatch, n)
		}
		s.batch = n
		return nil
	}
}

// New returns a Store using db, a *sql.DB or a *sqlx.DB, which must come from
// github.com/go-sql-driver/mysql (or a wrapper of it) with parseTime=true
// and loc=UTC in its DSN. The pool stays the caller's: Close does not close
// it.
//
// New runs one query to check the handle (see the package documentation)
// and to read max_allowed_packet, and fails if the database is unreachable.
// It does not touch the table, which need not exist yet.
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
		return nil, errors.New("mysql: nil database handle")
	}
	return newStore(ctx, x, false, opts)
}

// Open opens a pool from dsn (the go-sql-driver/mysql format, for example
// "user:pw@tcp(127.0.0.1:3306)/app") and returns a Store that owns it:
// Close closes the pool. Whatever dsn says, Open sets parseTime=true and
// loc=UTC, which the store needs; other parameters (pool-wide system
// variables, timeouts, TLS) are kept. Tune the pool with the *sql.DB
// methods on DB().
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	cfg, err := mysqldrv.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql: parse DSN: %w", err)
	}
	cfg.ParseTime = true
	cfg.Loc = time.UTC
	conn, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql: %w", err)
	}
	db := sql.OpenDB(conn)
	s, err := newStore(ctx, sqlx.NewDb(db, "mysql"), true, opts)
	if err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

func newStore(ctx context.Context, db *sqlx.DB, owned bool, opts []Option) (*Store, error) {
	s := &Store{db: db, owned: owned, table: DefaultTable, batch: DefaultCleanupBatch}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.quoted = quoteTable(s.schema, s.table)
	packet, err := checkHandle(ctx, db)
	if err != nil {
		return nil, err
	}
	s.maxData = packet - statementOverhead
	// Each key of a Cleanup batch costs at most its bytes, a length and a
	// type in the delete's packet.
	if need := s.batch*(session.MaxKeyLen+4) + statementOverhead; need > packet {
		return nil, fmt.Errorf("mysql: a cleanup batch of %d keys needs up to %d bytes, more than max_allowed_packet (%d): lower WithCleanupBatch", s.batch, need, packet)
	}
	return s, nil
}

// timeProbe is the instant checkHandle sends and reads back.
var timeProbe = time.Date(2001, time.February, 3, 4, 5, 6, 789012000, time.UTC)

const timeProbeText = "2001-02-03 04:05:06.789012"

// checkHandle proves that db reads DATETIME(6) into time.Time as UTC and
// writes time.Time parameters as UTC, and returns max_allowed_packet.
func checkHandle(ctx context.Context, db *sqlx.DB) (int, error) {
	var (
		read    any
		written string
		packet  int64
	)
	err := db.QueryRowContext(ctx,
		"SELECT CAST('"+timeProbeText+"' AS DATETIME(6)), CAST(CAST(? AS DATETIME(6)) AS CHAR), @@max_allowed_packet",
		timeProbe).Scan(&read, &written, &packet)
	if err != nil {
		return 0, fmt.Errorf("mysql: checking the database handle: %w", err)
	}
	got, ok := read.(time.Time)
	if !ok {
		return 0, fmt.Errorf("mysql: the database handle returns DATETIME as %T, not time.Time: "+
			"add parseTime=true&loc=UTC to the DSN (or set mysql.Config ParseTime=true and Loc=time.UTC), or use mysql.Open", read)
	}
	if !got.Equal(timeProbe) {
		return 0, fmt.Errorf("mysql: the database handle reads DATETIME %s as %s, not as UTC: "+
			"set loc=UTC in the DSN (or mysql.Config Loc=time.UTC), or use mysql.Open", timeProbeText, got.Format(time.RFC3339Nano))
	}
	if written != timeProbeText {
		return 0, fmt.Errorf("mysql: the database handle writes %s as %q, not as UTC: "+
			"set loc=UTC in the DSN (or mysql.Config Loc=time.UTC), or use mysql.Open", timeProbe.Format(time.RFC3339Nano), written)
	}
	if packet <= 2*statementOverhead {
		return 0, fmt.Errorf("mysql: max_allowed_packet is %d bytes, too small to store sessions", packet)
	}
	return int(packet), nil
}

// DB returns the pool the store uses, for tuning (SetMaxOpenConns and the
// like) and monitoring. Closing it is the job of whoever opened it: the
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
	if s.owned {
		return s.db.Close()
	}
	return nil
}

// prepared returns the statements, preparing them (and checking the table)
// on first use. A failure is not remembered: the next call tries again, so
// a store created before its table starts working once the table exists.
func (s *Store) prepared(ctx context.Context) (*statements, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, fmt.Errorf("mysql: %w", session.ErrClosed)
	}
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	colMax, err := s.checkTable(ctx)
	if err != nil {
		return nil, err
	}
	st := &statements{maxData: min(s.maxData, colMax)}
	t := s.quoted
	queries := []struct {
		dst **sqlx.Stmt
		sql string
	}{
		{&st.load, "SELECT data, atime, created, version FROM " + t + " WHERE session_id = ?"},
		{&st.create, "INSERT INTO " + t + " (session_id, atime, data, created, version) VALUES (?, ?, ?, ?, 1)"},
		{&st.update, "UPDATE " + t + " SET data = ?, atime = ?, version = version + 1 WHERE session_id = ? AND version = ?"},
		{&st.touch, "UPDATE " + t + " SET atime = ? WHERE session_id = ?"},
		{&st.exists, "SELECT 1 FROM " + t + " WHERE session_id = ?"},
		{&st.del, "DELETE FROM " + t + " WHERE session_id = ?"},
		// Cleanup: see there. The read is covered by the atime index.
		{&st.expired, fmt.Sprintf("SELECT session_id, atime FROM %s WHERE atime >= ? AND atime < ? ORDER BY atime LIMIT %d", t, s.batch)},
		{&st.purge, "DELETE FROM " + t + " WHERE atime < ? AND session_id IN (?" + strings.Repeat(", ?", s.batch-1) + ")"},
	}
	for _, q := range queries {
		stmt, err := s.db.PreparexContext(ctx, q.sql)
		if err != nil {
			st.close()
			return nil, wrap("prepare", err)
		}
		*q.dst = stmt
	}
	s.st.Store(st)
	return st, nil
}

// begin checks what every operation checks before any I/O.
func (s *Store) begin(ctx context.Context, key string) (*statements, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("mysql: %w", session.ErrClosed)
	}
	if !session.ValidKey(key) {
		return nil, fmt.Errorf("mysql: %w", session.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.prepared(ctx)
}

// fail wraps err from operation op, and says so if the store was closed
// meanwhile (a statement closed under a running call).
func (s *Store) fail(op string, err error) error {
	if s.closed.Load() && !errors.Is(err, session.ErrClosed) {
		return fmt.Errorf("mysql: %s: %w: %w", op, session.ErrClosed, err)
	}
	return wrap(op, err)
}

// row is a record as scanned by sqlx.
type row struct {
	Data    []byte    `db:"data"`
	ATime   time.Time `db:"atime"`
	Created time.Time `db:"created"`
	Version uint64    `db:"version"`
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	st, err := s.begin(ctx, key)
	if err != nil {
		return session.Record{}, err
	}
	var r row
	err = retry(func() error { return st.load.QueryRowxContext(ctx, key).StructScan(&r) })
	if errors.Is(err, sql.ErrNoRows) {
		return session.Record{}, session.ErrNotFound
	}
	if err != nil {
		return session.Record{}, s.fail("load", err)
	}
	if r.Data == nil { // database/sql copied the bytes; only normalise empty
		r.Data = []byte{}
	}
	return session.Record{Data: r.Data, ATime: r.ATime, Created: r.Created, Version: r.Version}, nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	st, err := s.begin(ctx, key)
	if err != nil {
		return err
	}
	data, err := st.checkData(rec.Data)
	if err != nil {
		return err
	}
	atime, err := dbTime("atime", rec.ATime)
	if err != nil {
		return err
	}
	created, err := dbTime("created", rec.Created)
	if err != nil {
		return err
	}
	err = retry(func() error {
		_, err := st.create.ExecContext(ctx, key, atime, data, created)
		return err
	})
	if err != nil {
		return s.fail("create", err)
	}
	return nil
}

// Update implements session.Store. It is one UPDATE when the version
// matches; only when it does not does a second query tell ErrNotFound from
// ErrConflict. Neither path can create a row.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	st, err := s.begin(ctx, key)
	if err != nil {
		return err
	}
	data, err := st.checkData(rec.Data)
	if err != nil {
		return err
	}
	atime, err := dbTime("atime", rec.ATime)
	if err != nil {
		return err
	}
	// The version always changes, so the server's "changed rows" (the
	// default) and "found rows" (clientFoundRows) are the same here.
	n, err := execRows(ctx, st.update, data, atime, key, rec.Version)
	if err != nil {
		return s.fail("update", err)
	}
	if n == 1 {
		return nil
	}
	switch ok, err := rowExists(ctx, st, key); {
	case err != nil:
		return s.fail("update", err)
	case !ok:
		return session.ErrNotFound
	}
	// Whatever the version is now (even rec.Version again, if the row was
	// deleted and re-created meanwhile), the row was not the one the caller
	// read.
	return session.ErrConflict
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

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	st, err := s.begin(ctx, key)
	if err != nil {
		return err
	}
	at, err := dbTime("atime", atime)
	if err != nil {
		return err
	}
	n, err := execRows(ctx, st.touch, at, key)
	if err != nil {
		return s.fail("touch", err)
	}
	if n == 1 {
		return nil
	}
	// Zero rows changed: either no row, or (without clientFoundRows) the row
	// already had this atime.
	switch ok, err := rowExists(ctx, st, key); {
	case err != nil:
		return s.fail("touch", err)
	case !ok:
		return session.ErrNotFound
	}
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	st, err := s.begin(ctx, key)
	if err != nil {
		return err
	}
	err = retry(func() error {
		_, err := st.del.ExecContext(ctx, key)
		return err
	})
	if err != nil {
		return s.fail("delete", err)
	}
	return nil
}

// Cleanup implements session.Store. It works in batches of at most the
// cleanup batch size, until a batch comes back short; ctx is checked between
// batches, and the count deleted so far is returned with any error.
//
// A batch is two statements: a plain (non-locking) read of up to n expired
// keys in atime order, through the atime index (from where the previous
// batch ended), then
// DELETE ... WHERE atime < ? AND session_id IN (those keys). The delete
// finds its rows by primary key and re-checks atime under the row lock, so
// a session that a request touched meanwhile is kept. Every statement of
// the store thus locks a row's primary key before its atime index entry:
// no lock-order inversion, so no deadlock with requests or with another
// server's Cleanup (a single DELETE ... ORDER BY atime LIMIT n walks the
// atime index first, and the server then kills requests moving an atime as
// deadlock victims). Two servers cleaning at once may read the same keys;
// their deletes queue behind each other for milliseconds, and each row is
// deleted, and counted, once. A Cleanup with nothing to delete is one
// read, taking no locks.
//
// The cutoff is truncated to the microsecond, as stored times are, so a
// record is never deleted early. A cutoff after 9999-12-31 23:59:59.999999
// (DATETIME's end) is treated as that instant.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if s.closed.Load() {
		return 0, fmt.Errorf("mysql: %w", session.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c := cutoff.UTC().Truncate(time.Microsecond)
	if c.Before(minTime) {
		return 0, nil // no storable time is before it
	}
	if c.After(maxTime) {
		c = maxTime
	}
	st, err := s.prepared(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	args := make([]any, 1+s.batch) // cutoff, then the keys
	args[0] = c
	// Each read starts at the last atime the previous one saw, rather than
	// walking again over the index entries of rows just deleted, which
	// InnoDB keeps (marked) until its purge catches up.
	from := minTime
	for {
		if err := ctx.Err(); err != nil {
			return total, err
		}
		keys, last, err := st.expiredKeys(ctx, from, c, s.batch)
		if err != nil {
			return total, s.fail("cleanup", err)
		}
		if len(keys) == 0 {
			return total, nil
		}
		for i := range s.batch {
			// A short batch repeats its last key: the IN list has a fixed
			// length, so one prepared statement serves every batch.
			args[1+i] = keys[min(i, len(keys)-1)]
		}
		var n int64
		err = retry(func() error {
			res, err := st.purge.ExecContext(ctx, args...)
			if err != nil {
				return err
			}
			n, err = res.RowsAffected()
			return err
		})
		total += int(n)
		if err != nil {
			return total, s.fail("cleanup", err)
		}
		if len(keys) < s.batch {
			return total, nil
		}
		from = last
	}
}

// expiredKeys reads up to n keys whose atime is in [from, cutoff), oldest
// first, without locking anything, and returns the atime of the last.
func (st *statements) expiredKeys(ctx context.Context, from, cutoff time.Time, n int) ([][]byte, time.Time, error) {
	rows, err := st.expired.QueryContext(ctx, from, cutoff)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer rows.Close()
	keys := make([][]byte, 0, n)
	var last time.Time
	for rows.Next() {
		var k []byte
		if err := rows.Scan(&k, &last); err != nil {
			return nil, time.Time{}, err
		}
		keys = append(keys, k)
	}
	return keys, last, rows.Err()
}

// checkData refuses data that cannot be stored whole, before any I/O, and
// turns nil into empty (nil would be sent as NULL).
func (st *statements) checkData(data []byte) ([]byte, error) {
	if len(data) > st.maxData {
		return nil, fmt.Errorf("mysql: %d bytes of session data, more than the %d this store can hold "+
			"(max_allowed_packet and the data column's size): %w", len(data), st.maxData, session.ErrTooLarge)
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
func dbTime(what string, t time.Time) (time.Time, error) {
	u := t.UTC().Truncate(time.Microsecond)
	if u.Before(minTime) || u.After(maxTime) {
		return time.Time{}, fmt.Errorf("mysql: %s %s is outside DATETIME's range (years 1000 to 9999)", what, t.Format(time.RFC3339Nano))
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
