package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// Defaults and limits of the options.
const (
	// DefaultTable is the table name used without WithTable; web.py's
	// DBStore documentation calls its table "sessions" too.
	DefaultTable = "sessions"

	// DefaultCleanupBatch is how many rows one Cleanup statement deletes
	// at most. A batch of this size holds its row locks for a few
	// milliseconds, so requests never queue behind a cleanup for long.
	DefaultCleanupBatch = 1000

	// MaxCleanupBatch bounds WithCleanupBatch: larger batches bring little
	// speed (a million rows took 12.3 s in batches of 1000 and 11.6 s in
	// batches of 5000 on the test machine) and start to look like the one
	// giant transaction that batching exists to avoid.
	MaxCleanupBatch = 100_000

	// MaxDataSize is the largest Data the store accepts, in bytes. bytea
	// holds up to 1 GB, but lib/pq sends bytea as hex text (twice the size)
	// in one protocol message, which PostgreSQL caps at 1 GB; 256 MiB stays
	// well inside both limits. Larger data is refused with an error wrapping
	// session.ErrTooLarge before any query. The manager's own default
	// limit, session.DefaultMaxDataSize, is far smaller.
	MaxDataSize = 256 << 20

	// maxTableLen leaves room for the "_atime_idx" suffix of the index
	// name within PostgreSQL's 63-byte identifiers: a longer name would be
	// truncated, and two long table names could then share an index name,
	// making CREATE INDEX IF NOT EXISTS skip an index that does not exist.
	maxTableLen = 63 - len(indexSuffix)
	indexSuffix = "_atime_idx"
)

// identRE is what WithTable and WithSchema accept: a plain SQL identifier.
// Names are quoted as well (pq.QuoteIdentifier), so case is kept, but no
// name needs quoting to be safe, and none can surprise a DBA.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// An Option configures a Store. New and Open report the first invalid one.
type Option func(*config) error

type config struct {
	schema string
	table  string
	batch  int
}

// WithTable sets the table name (default DefaultTable). It must be a plain
// identifier, [A-Za-z_][A-Za-z0-9_]*, of at most 53 bytes (the index name
// adds a suffix within PostgreSQL's 63). It is quoted in every statement,
// so "Sessions" and "sessions" are two tables.
func WithTable(name string) Option {
	return func(c *config) error {
		if !identRE.MatchString(name) || len(name) > maxTableLen {
			return fmt.Errorf("postgres: invalid table name %q: want [A-Za-z_][A-Za-z0-9_]*, at most %d bytes", name, maxTableLen)
		}
		c.table = name
		return nil
	}
}

// WithSchema puts the table in the named schema, which must exist. Without
// it the table name is unqualified and PostgreSQL resolves it through the
// connection's search_path.
func WithSchema(name string) Option {
	return func(c *config) error {
		if !identRE.MatchString(name) || len(name) > 63 {
			return fmt.Errorf("postgres: invalid schema name %q: want [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes", name)
		}
		c.schema = name
		return nil
	}
}

// WithCleanupBatch sets how many rows each Cleanup statement deletes at
// most, 1 to MaxCleanupBatch (default DefaultCleanupBatch). Smaller batches
// hold fewer locks for a shorter time; larger ones need fewer round trips.
func WithCleanupBatch(n int) Option {
	return func(c *config) error {
		if n < 1 || n > MaxCleanupBatch {
			return fmt.Errorf("postgres: cleanup batch %d out of range 1..%d", n, MaxCleanupBatch)
		}
		c.batch = n
		return nil
	}
}

// Store is a session.Store on a PostgreSQL table. It is safe for concurrent
// use. Create it with New or Open; Close releases its prepared statements
// (and the pool, if Open made it).
type Store struct {
	db    *sqlx.DB
	owned bool // Open made db, so Close closes it

	schema, table string // as configured, unquoted
	qtable        string // quoted, schema-qualified if a schema is set
	batch         int
	maxData       int // MaxDataSize; tests lower it

	closed atomic.Bool

	load, create, update, touch, del, cleanup lazyStmt
}

var _ session.Store = (*Store)(nil)

// New returns a Store over the application's pool: a *sql.DB opened with
// lib/pq (driver name "postgres"), or a *sqlx.DB around one. The store
// shares the pool and never closes it. New does no I/O: statements are
// prepared on first use, so the table may be created after New, with
// CreateTable.
func New[DB *sql.DB | *sqlx.DB](db DB, opts ...Option) (*Store, error) {
	var x *sqlx.DB
	switch d := any(db).(type) {
	case *sql.DB:
		if d != nil {
			x = sqlx.NewDb(d, "postgres")
		}
	case *sqlx.DB:
		x = d
	}
	if x == nil || x.DB == nil {
		return nil, errors.New("postgres: nil database handle")
	}
	return build(x, false, opts)
}

// Open opens a pool from dsn (any form lib/pq accepts, such as
// "postgres://user@host:5432/db?sslmode=disable") and returns a Store that
// owns it: Close closes the pool. A malformed DSN is reported here; the
// first connection is made by the first operation.
func Open(dsn string, opts ...Option) (*Store, error) {
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	db := sqlx.NewDb(sql.OpenDB(connector), "postgres")
	s, err := build(db, true, opts)
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

func build(db *sqlx.DB, owned bool, opts []Option) (*Store, error) {
	cfg := config{table: DefaultTable, batch: DefaultCleanupBatch}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	s := &Store{
		db:      db,
		owned:   owned,
		schema:  cfg.schema,
		table:   cfg.table,
		qtable:  pq.QuoteIdentifier(cfg.table),
		batch:   cfg.batch,
		maxData: MaxDataSize,
	}
	if cfg.schema != "" {
		s.qtable = pq.QuoteIdentifier(cfg.schema) + "." + s.qtable
	}
	t := s.qtable
	s.load.query = `SELECT data, atime, created, version FROM ` + t + ` WHERE session_id = $1`
	s.create.query = `INSERT INTO ` + t + ` (session_id, data, atime, created, version) VALUES ($1, $2, $3, $4, 1)`
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
	UPDATE ` + t + ` AS s SET data = $3, atime = $4, version = s.version + 1
	FROM cur WHERE s.session_id = $1 AND cur.version = $2
	RETURNING 1
)
SELECT EXISTS (SELECT 1 FROM upd) AS updated, (SELECT version FROM cur) AS version`
	s.touch.query = `UPDATE ` + t + ` SET atime = $2 WHERE session_id = $1`
	s.del.query = `DELETE FROM ` + t + ` WHERE session_id = $1`
	// One bounded batch, oldest first along the atime index. SKIP LOCKED
	// lets servers that clean at the same time split the work instead of
	// queueing on (and then redoing) each other's rows; a row locked by a
	// request in flight is left for the next run, since that request is
	// about to give it a new atime anyway. FOR UPDATE also re-checks
	// atime on the newest version of a row touched meanwhile, so a session
	// touched during the cleanup survives it.
	//
	// "= ANY (ARRAY(subquery))" rather than "IN (subquery)": the array is
	// computed once and the rows are then found through the primary key,
	// whereas PostgreSQL plans IN here as a hash semi-join over a scan of
	// the whole table, for every batch.
	s.cleanup.query = `DELETE FROM ` + t + ` WHERE session_id = ANY (ARRAY(
	SELECT session_id FROM ` + t + ` WHERE atime < $1 ORDER BY atime LIMIT $2 FOR UPDATE SKIP LOCKED
))`
	return s, nil
}

// Table returns the table's name as it appears in the store's statements:
// quoted, and schema-qualified when WithSchema was given.
func (s *Store) Table() string { return s.qtable }

// Close releases the store's prepared statements and, if Open made the
// pool, closes the pool. Calls after Close fail with an error wrapping
// session.ErrClosed. Close is idempotent.
func (s *Store) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	var errs []error
	for _, l := range []*lazyStmt{&s.load, &s.create, &s.update, &s.touch, &s.del, &s.cleanup} {
		if err := l.close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.owned {
		if err := s.db.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("postgres: close: %w", err)
	}
	return nil
}

// lazyStmt is a statement prepared on first use. Preparing in New would
// force the table to exist before the Store that creates it. Once
// prepared, database/sql re-prepares it transparently on each pool
// connection it runs on, so every later call is a single round trip
// (Bind/Execute) instead of lib/pq's two for an unprepared query
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

// begin is the common start of every operation: refuse use after Close,
// refuse malformed keys (every statement but Cleanup's takes one), and
// fetch the prepared statement.
func (s *Store) begin(ctx context.Context, op, key string, l *lazyStmt) (*sqlx.Stmt, error) {
	if s.closed.Load() {
		return nil, fmt.Errorf("postgres: %s: %w", op, session.ErrClosed)
	}
	if l != &s.cleanup && !session.ValidKey(key) {
		// Defence in depth: the key is a bound parameter anyway, but a key
		// the manager cannot produce means a bug or an attack upstream.
		return nil, fmt.Errorf("postgres: %s: %w (%d bytes)", op, session.ErrInvalidKey, len(key))
	}
	st, err := s.prepared(ctx, l)
	if err != nil {
		return nil, s.fail(ctx, op+": prepare", err)
	}
	return st, nil
}

// fail wraps err, keeping it reachable with errors.Is and errors.As. When
// the context ended, lib/pq may report the server's "canceling statement
// due to user request" rather than the context's error; the context's
// error is then wrapped as well, so callers can test errors.Is(err,
// context.Canceled) whatever the timing.
func (s *Store) fail(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("postgres: %s: %w (%w)", op, cerr, err)
	}
	if s.closed.Load() && !errors.Is(err, session.ErrClosed) {
		// The statement or pool was closed under this call.
		return fmt.Errorf("postgres: %s: %w (%w)", op, session.ErrClosed, err)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// sqlState returns the SQLSTATE of the server error in err's chain. It
// asks for the SQLState method that *pq.Error has (and pgx's error too),
// rather than for *pq.Error itself.
func sqlState(err error) string {
	var se interface{ SQLState() string }
	if errors.As(err, &se) {
		return se.SQLState()
	}
	return ""
}

// dbTime is how every time goes to the database: in UTC, so the value
// never depends on a zone database or the connection's TimeZone, and
// truncated to timestamptz's microsecond, because the server would round
// the nanoseconds lib/pq sends and could move a time into the future.
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// dbData is what Data becomes: lib/pq sends a nil []byte as NULL, which the
// NOT NULL column refuses, while the contract allows empty data.
func dbData(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

type row struct {
	Data    []byte    `db:"data"`
	ATime   time.Time `db:"atime"`
	Created time.Time `db:"created"`
	Version int64     `db:"version"`
}

// Load implements session.Store with one SELECT.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	st, err := s.begin(ctx, "load", key, &s.load)
	if err != nil {
		return session.Record{}, err
	}
	var r row
	// Scanning into []byte copies (database/sql never hands out the
	// driver's buffer for a *[]byte), so the record aliases nothing.
	if err := st.GetContext(ctx, &r, key); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return session.Record{}, session.ErrNotFound
		}
		return session.Record{}, s.fail(ctx, "load", err)
	}
	if r.Data == nil {
		r.Data = []byte{}
	}
	return session.Record{Data: r.Data, ATime: r.ATime.UTC(), Created: r.Created.UTC(), Version: uint64(r.Version)}, nil
}

// Create implements session.Store with one INSERT; a unique violation on
// the key is session.ErrExists, with the server's error wrapped beside it.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if len(rec.Data) > s.maxData {
		return fmt.Errorf("postgres: create: %w: %d bytes, limit %d", session.ErrTooLarge, len(rec.Data), s.maxData)
	}
	st, err := s.begin(ctx, "create", key, &s.create)
	if err != nil {
		return err
	}
	_, err = st.ExecContext(ctx, key, dbData(rec.Data), dbTime(rec.ATime), dbTime(rec.Created))
	if err != nil {
		if sqlState(err) == "23505" { // unique_violation
			return fmt.Errorf("postgres: create: %w (%w)", session.ErrExists, err)
		}
		return s.fail(ctx, "create", err)
	}
	return nil
}

// Update implements session.Store with one UPDATE guarded by the version,
// inside a statement that also reports why nothing was updated.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if len(rec.Data) > s.maxData {
		return fmt.Errorf("postgres: update: %w: %d bytes, limit %d", session.ErrTooLarge, len(rec.Data), s.maxData)
	}
	st, err := s.begin(ctx, "update", key, &s.update)
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
	if err := st.GetContext(ctx, &res, key, want, dbData(rec.Data), dbTime(rec.ATime)); err != nil {
		return s.fail(ctx, "update", err)
	}
	switch {
	case res.Updated:
		return nil
	case !res.Version.Valid:
		return session.ErrNotFound
	default:
		return fmt.Errorf("postgres: update: %w: stored version %d, expected %d", session.ErrConflict, res.Version.Int64, rec.Version)
	}
}

// Touch implements session.Store with one UPDATE of atime.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	st, err := s.begin(ctx, "touch", key, &s.touch)
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
		return session.ErrNotFound
	}
	return nil
}

// Delete implements session.Store with one DELETE.
func (s *Store) Delete(ctx context.Context, key string) error {
	st, err := s.begin(ctx, "delete", key, &s.del)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, key); err != nil {
		return s.fail(ctx, "delete", err)
	}
	return nil
}

// Cleanup implements session.Store. It deletes in batches of at most the
// configured size (WithCleanupBatch), each its own statement and
// transaction, oldest first, until a batch comes back short; so a million
// expired rows never make one giant transaction or hold long locks, and
// requests on live sessions proceed between and during batches. Servers
// cleaning at the same time skip the rows another one holds. A row locked
// by a request in flight is skipped too and left for the next run. The
// context is checked between batches; on error the count so far is
// returned with it.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	st, err := s.begin(ctx, "cleanup", "", &s.cleanup)
	if err != nil {
		return 0, err
	}
	// Truncating the cutoff can only keep a row that is less than a
	// microsecond older than it; rounding up could delete a live one.
	c := dbTime(cutoff)
	total := 0
	for {
		if err := ctx.Err(); err != nil {
			return total, fmt.Errorf("postgres: cleanup: %w", err)
		}
		res, err := st.ExecContext(ctx, c, s.batch)
		if err != nil {
			return total, s.fail(ctx, "cleanup", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, s.fail(ctx, "cleanup", err)
		}
		total += int(n)
		if n < int64(s.batch) {
			return total, nil
		}
	}
}
