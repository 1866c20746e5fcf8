// Package postgres is a session.Store on PostgreSQL: web.py's DBStore, grown
// to the Store contract, for deployments where several application servers
// share their sessions through one database.
//
// Build it over the application's pool with New (a *sql.DB or a *sqlx.DB)
// or let Open make a pool from a DSN, create the table once with
// CreateTable (or run the SQL from Schema in a migration), and hand the
// store to session.New:
//
//	store, err := postgres.New(db, postgres.WithTable("sessions"))
//	...
//	if err := store.CreateTable(ctx); err != nil { ... }
//	m, err := session.New(store)
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
//
// The module README explains each difference from web.py's table.
//
// # Statements and round trips
//
// Every operation is a single statement, prepared once per pool connection,
// so each costs one network round trip once the pool is warm: Load is one
// SELECT, Create one INSERT, Update one UPDATE (inside a statement that
// also tells a version conflict from a missing row), Touch one UPDATE,
// Delete one DELETE. Cleanup deletes in batches (WithCleanupBatch), each
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
// Errors wrap their cause: errors.As(err, new(*pq.Error)) reaches the
// server's error, and a cancelled or expired context gives an error that
// satisfies errors.Is(err, context.Canceled) or
// errors.Is(err, context.DeadlineExceeded) even when lib/pq reports the
// server's "canceling statement" error instead. Keys outside the contract's
// alphabet are refused with an error wrapping session.ErrInvalidKey before
// any query.
package postgres
