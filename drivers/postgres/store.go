package postgres

import (
	"context"
	"database/sql"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// maxDataSize is the largest Data the store accepts, in bytes (see
// Store.MaxDataSize).
const maxDataSize = 256 << 20

// minServerVersion is the oldest PostgreSQL the statements run on: Update
// needs WITH ... AS MATERIALIZED, new in PostgreSQL 12.
const minServerVersion = 120000

// Store is a session.Store on a PostgreSQL table. It is safe for concurrent
// use. Create it with New or Open; Close releases its prepared statements
// (and the pool, if Open made it).
type Store struct {
	db     *sqlx.DB
	ownsDB bool // Open made db, so Close closes it

	schema, table string // as configured, unquoted
	qtable        string // quoted, schema-qualified if a schema is set
	batch         int
	maxData       int // MaxDataSize; tests lower it

	closed atomic.Bool

	load, create, update, touch, del, cleanup, loadOwned lazyStmt
}

var (
	_ session.Store      = (*Store)(nil)
	_ session.OwnerIndex = (*Store)(nil)
)

// New returns a Store over the application's pool: a *sql.DB opened with
// a PostgreSQL driver of database/sql (lib/pq's "postgres", or pgx's
// "pgx" from github.com/jackc/pgx/v5/stdlib), or a *sqlx.DB around one.
// The store shares the pool, never closes it and leaves its settings
// alone.
//
// New checks the server at once, with one query: it fails with an error
// reading "postgres: connect: ..." when no connection can be made (the
// server unreachable, the login refused), and refuses a server older than
// PostgreSQL 12. It does not touch the table, which may be created after
// New, with CreateTable: statements are prepared on first use.
func New[DB *sql.DB | *sqlx.DB](ctx context.Context, db DB, opts ...Option) (*Store, error) {
	var x *sqlx.DB
	switch d := any(db).(type) {
	case *sql.DB:
		if d != nil {
			x = sqlx.NewDb(d, "postgres")
		}
	case *sqlx.DB:
		if d != nil && d.DB != nil {
			x = d
		}
	}
	if x == nil {
		return nil, opError("new", errors.New("nil database handle"))
	}
	o, err := newOptions(opts, false)
	if err != nil {
		return nil, err
	}
	s := build(x, false, o)
	if err := s.checkServer(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Open opens a pool from dsn with lib/pq (any form it accepts, such as
// "postgres://user@host:5432/db?sslmode=disable") and returns a Store that
// owns it: Close closes the pool. The pool keeps up to DefaultMaxConns
// connections, all of them warm, renewed after DefaultConnMaxLifetime and
// closed when idle for DefaultConnMaxIdleTime (see those constants for the
// reasons, and WithMaxConns, WithConnMaxLifetime and WithConnMaxIdleTime
// to change them). Like New, Open checks the server at once: a malformed
// DSN, an unreachable server and a refused login all fail here.
func Open(ctx context.Context, dsn string, opts ...Option) (*Store, error) {
	o, err := newOptions(opts, true)
	if err != nil {
		return nil, err
	}
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, opError("open", err)
	}
	db := sql.OpenDB(connector)
	o.pool.apply(db)
	s := build(sqlx.NewDb(db, "postgres"), true, o)
	if err := s.checkServer(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func build(db *sqlx.DB, ownsDB bool, o options) *Store {
	s := &Store{
		db:      db,
		ownsDB:  ownsDB,
		schema:  o.schema,
		table:   o.table,
		qtable:  pq.QuoteIdentifier(o.table),
		batch:   o.batch,
		maxData: maxDataSize,
	}
	if o.schema != "" {
		s.qtable = pq.QuoteIdentifier(o.schema) + "." + s.qtable
	}
	t := s.qtable
	s.load.query = `SELECT data, atime, created, version, owner FROM ` + t + ` WHERE session_id = $1`
	s.create.query = `INSERT INTO ` + t + ` (session_id, data, atime, created, version, owner) VALUES ($1, $2, $3, $4, 1, $5)`
	// Update must tell a version conflict from a missing row in the same
	// statement, without a window in which the answer could go stale.
	// "cur" locks the newest committed version of the row (FOR UPDATE waits
	// for a concurrent writer and then sees its result, and sees nothing if
	// it deleted the row), and the UPDATE joins on it, so the update and the
	// reported version come from the same locked row: "updated" with the
	// version matched, NULL when the row is gone, another version on a
	// conflict. An UPDATE can never insert, whatever the race.
	s.update.query = `WITH cur AS MATERIALIZED (
	SELECT version FROM ` + t + ` WHERE session_id = $1 FOR UPDATE
), upd AS (
	UPDATE ` + t + ` AS s SET data = $3, atime = $4, owner = $5, version = s.version + 1
	FROM cur WHERE s.session_id = $1 AND cur.version = $2
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM upd) AS updated, (SELECT version FROM cur) AS version`
	s.touch.query = `UPDATE ` + t + ` SET atime = $2 WHERE session_id = $1`
	s.del.query = `DELETE FROM ` + t + ` WHERE session_id = $1`
	s.cleanup.query = cleanupQuery(t)
	s.loadOwned.query = loadOwnedQuery(t)
	return s
}

// checkServer is New's check: one query that needs a working connection
// and tells the server's version.
func (s *Store) checkServer(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `SELECT current_setting('server_version_num')::int`).Scan(&version); err != nil {
		return s.fail(ctx, "connect", err)
	}
	if version < minServerVersion {
		return opError("new", detailf("PostgreSQL server version %d is too old: the store needs 12 or later", version))
	}
	return nil
}

// Table returns the table's name as it appears in the store's statements:
// quoted, and schema-qualified when WithSchema was given.
func (s *Store) Table() string { return s.qtable }

// DB returns the pool the store uses, for monitoring (Stats) and, for a
// pool the application passed to New, tuning. Closing it is the job of
// whoever opened it: the application for New, the store's Close for Open.
func (s *Store) DB() *sql.DB { return s.db.DB }

// MaxDataSize returns the largest Data the store accepts, in bytes: 256
// MiB. bytea holds up to 1 GB, but lib/pq sends bytea as hex text (twice
// the size) in one protocol message, which PostgreSQL caps at 1 GB; 256
// MiB stays well inside both limits, with either driver. Larger data is
// refused with an error wrapping session.ErrTooLarge before any query. The
// manager's own default limit, session.DefaultMaxDataSize, is far smaller.
func (s *Store) MaxDataSize() int { return s.maxData }

// Close releases the store's prepared statements and, if Open made the
// pool, closes the pool. Calls after Close fail with an error wrapping
// session.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	for _, l := range []*lazyStmt{&s.load, &s.create, &s.update, &s.touch, &s.del, &s.cleanup, &s.loadOwned} {
		if err := l.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.ownsDB {
		if err := s.db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return opError("close", err)
	}
	return nil
}

// lazyStmt is a statement prepared on first use. Preparing in New would
// force the table to exist before the Store that creates it. Once
// prepared, database/sql re-prepares it transparently on each pool
// connection it runs on, so every later call is a single round trip
// (Bind/Execute) instead of two for an unprepared query with parameters
// (Parse/Describe, then Bind/Execute).
type lazyStmt struct {
	query string
	stmt  atomic.Pointer[sqlx.Stmt]
	mu    sync.Mutex // serialises preparing and closing
}

func (s *Store) prepared(ctx context.Context, l *lazyStmt) (*sqlx.Stmt, error) {
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.stmt.Load(); st != nil {
		return st, nil
	}
	if s.closed.Load() {
		return nil, session.ErrClosed
	}
	st, err := s.db.PreparexContext(ctx, l.query)
	if err != nil {
		return nil, err // not kept: the next call tries again (the table may be created meanwhile)
	}
	l.stmt.Store(st)
	return st, nil
}

func (l *lazyStmt) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if st := l.stmt.Swap(nil); st != nil {
		return st.Close()
	}
	return nil
}

// dbTime is how every time goes to the database: in UTC, so the value
// never depends on a zone database or the connection's TimeZone, and
// truncated to timestamptz's microsecond, because the server would round
// the nanoseconds lib/pq sends and could move a time into the future.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dbData is what Data becomes: both lib/pq and pgx send a nil []byte as
// NULL, which the NOT NULL column refuses, while the contract allows empty
// data.
func dbData(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// row is a record as the statements return it.
type row struct {
	Data    []byte    `db:"data"`
	ATime   time.Time `db:"atime"`
	Created time.Time `db:"created"`
	Version int64     `db:"version"`
	Owner   string    `db:"owner"`
}

func (r row) record() session.Record {
	// Scanning into []byte copies (database/sql never hands out the
	// driver's buffer for a *[]byte), so the record aliases nothing.
	if r.Data == nil {
		r.Data = []byte{}
	}
	return session.Record{Data: r.Data, ATime: r.ATime.UTC(), Created: r.Created.UTC(), Version: uint64(r.Version), Owner: r.Owner}
}

// Load implements session.Store with one SELECT.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	st, err := s.begin(ctx, "load", &s.load, key)
	if err != nil {
		return session.Record{}, err
	}
	var r row
	if err := st.GetContext(ctx, &r, key); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return session.Record{}, opError("load", session.ErrNotFound)
		}
		return session.Record{}, s.fail(ctx, "load", err)
	}
	return r.record(), nil
}

// checkSize refuses data the store cannot hold, before any query.
func (s *Store) checkSize(op string, data []byte) error {
	if len(data) > s.maxData {
		return opError(op, session.ErrTooLarge, detailf("%d bytes, limit %d", len(data), s.maxData))
	}
	return nil
}

// Create implements session.Store with one INSERT, which stores the owner
// too; a unique violation on the key is session.ErrExists, with the
// server's error wrapped beside it.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.checkSize("create", rec.Data); err != nil {
		return err
	}
	st, err := s.begin(ctx, "create", &s.create, ownerKeys(key, rec.Owner)...)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, key, dbData(rec.Data), dbTime(rec.ATime), dbTime(rec.Created), rec.Owner); err != nil {
		return s.fail(ctx, "create", err)
	}
	return nil
}

// Update implements session.Store with one UPDATE guarded by the version,
// which replaces the owner along with Data and ATime, inside a statement
// that also reports why nothing was updated.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.checkSize("update", rec.Data); err != nil {
		return err
	}
	st, err := s.begin(ctx, "update", &s.update, ownerKeys(key, rec.Owner)...)
	if err != nil {
		return err
	}
	// Stored versions are positive bigints. A version beyond int64 can
	// never match (and database/sql refuses such a uint64), so ask with -1,
	// which matches nothing but still tells conflict from not-found.
	want := int64(-1)
	if rec.Version <= math.MaxInt64 {
		want = int64(rec.Version)
	}
	var res struct {
		Updated bool          `db:"updated"`
		Version sql.NullInt64 `db:"version"`
	}
	if err := st.GetContext(ctx, &res, key, want, dbData(rec.Data), dbTime(rec.ATime), rec.Owner); err != nil {
		return s.fail(ctx, "update", err)
	}
	switch {
	case res.Updated:
		return nil
	case !res.Version.Valid:
		return opError("update", session.ErrNotFound)
	default:
		return opError("update", session.ErrConflict, detailf("stored version %d, expected %d", res.Version.Int64, rec.Version))
	}
}

// Touch implements session.Store with one UPDATE of atime. PostgreSQL
// counts the rows an UPDATE matched, so a Touch to the atime already
// stored is one row, not zero.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	st, err := s.begin(ctx, "touch", &s.touch, key)
	if err != nil {
		return err
	}
	res, err := st.ExecContext(ctx, key, dbTime(atime))
	if err != nil {
		return s.fail(ctx, "touch", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.fail(ctx, "touch", err)
	}
	if n == 0 {
		return opError("touch", session.ErrNotFound)
	}
	return nil
}

// Delete implements session.Store with one DELETE.
func (s *Store) Delete(ctx context.Context, key string) error {
	st, err := s.begin(ctx, "delete", &s.del, key)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, key); err != nil {
		return s.fail(ctx, "delete", err)
	}
	return nil
}
