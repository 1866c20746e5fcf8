// Package postgres is a session.Store on PostgreSQL: web.py's DBStore, grown
// to the Store contract, for deployments where several application servers
// share their sessions through one database.
//
// Build it over the application's pool with New (a *sql.DB or a *sqlx.DB,
// opened with lib/pq or with pgx's database/sql driver) or let Open make a
// pool from a DSN, create the table once with CreateTable (or run the SQL
// from Schema in a migration), and hand the store to session.New:
//
//	store, err := postgres.New(ctx, db, postgres.WithTable("sessions"))
//	...
//	if err := store.CreateTable(ctx); err != nil { ... }
//	m, err := session.New(store)
//
// New and Open check the server at once: a store that cannot work fails at
// start-up with "postgres: connect: <cause>", not at the first request.
//
// # Pools
//
// Open's pool keeps up to DefaultMaxConns connections, as many idle as
// open, each renewed after DefaultConnMaxLifetime and closed after
// DefaultConnMaxIdleTime unused (WithMaxConns, WithConnMaxLifetime and
// WithConnMaxIdleTime change them). database/sql's own defaults (2 idle
// connections, no limit on open ones) make a busy server open and close
// connections all the time, and let a burst of requests exhaust the
// server's max_connections. A pool passed to New is the application's to
// tune; DB returns it.
//
// # Drivers
//
// The store needs only database/sql: it reads server errors through their
// SQLState method, which lib/pq's *pq.Error and pgx's *pgconn.PgError both
// have, and imports neither driver for them. The conformance suite runs
// over both (pgx v5's github.com/jackc/pgx/v5/stdlib, driver name "pgx").
// Open uses lib/pq.
//
// # Table
//
// One row per session:
//
//	session_id text COLLATE "C" PRIMARY KEY   -- the store key, 1 to 128 bytes
//	data       bytea NOT NULL                 -- the encoded session, byte-exact
//	atime      timestamptz NOT NULL           -- last recorded access (indexed, for Cleanup)
//	created    timestamptz NOT NULL           -- set once by Create
//	version    bigint NOT NULL                -- 1 after Create, +1 per Update
//	owner      text COLLATE "C" NOT NULL      -- the owner key, '' for none (partial index, for LoadOwned)
//
// The module README explains each difference from web.py's table.
// CreateTable adds the owner column and its index to a table created by an
// earlier version, in place, keeping every session (with no owner), and is
// safe to run from several servers starting at once.
//
// # Statements and round trips
//
// Every operation is a single statement, prepared once per pool connection,
// so each costs one network round trip once the pool is warm: Load is one
// SELECT, Create one INSERT, Update one UPDATE (inside a statement that
// also tells a version conflict from a missing row), Touch one UPDATE,
// Delete one DELETE, LoadOwned one SELECT through the owner index. Create
// and Update store the owner in the same statement: binding a session to
// an owner costs no extra round trip. Cleanup deletes in batches (WithCleanupBatch), each
// its own short statement; concurrent Cleanups on several servers skip each
// other's rows (FOR UPDATE SKIP LOCKED) instead of doing the same work.
//
// # Time
//
// The store never reads a clock, neither Go's nor the database's (no now()
// in any statement): every time comes from the caller, converted to UTC and
// truncated, never rounded, to the microsecond that timestamptz keeps. The
// server's and the connection's TimeZone settings make no difference.
//
// # Errors
//
// Every error reads "postgres: <op>: <cause>" and wraps its cause:
// errors.Is reaches the session sentinels ("postgres: update: session:
// version conflict: ..."), errors.As the driver's error (*pq.Error, or
// *pgconn.PgError with pgx), and a cancelled or expired context gives an error that
// satisfies errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded) even when lib/pq reports the
// server's "canceling statement" error instead. Keys outside the contract's
// alphabet are refused with an error wrapping session.ErrInvalidKey before
// any query.
package postgres
