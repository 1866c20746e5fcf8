// Package mysql is a session.Store on MySQL 8 or MariaDB 10.6+: web.py's
// DBStore, grown to the Store contract, for sessions shared by many
// application servers.
//
// # Use
//
// Either hand over the application's pool, opened with parseTime=true and
// loc=UTC:
//
//	db, err := sql.Open("mysql", "app:pw@tcp(db:3306)/app?parseTime=true&loc=UTC")
//	...
//	store, err := mysql.New(ctx, db) // db a *sql.DB or a *sqlx.DB
//
// or let Open build a pool from a DSN; it sets parseTime and loc itself and
// Close closes that pool:
//
//	store, err := mysql.Open(ctx, "app:pw@tcp(db:3306)/app")
//
// then create the table once (CreateTable is safe to run from every server
// at start-up, concurrently, and migrates a table made by an earlier
// version in place) and give the store to session.New. The table's SQL
// (Schema, and the module's README) is there for those who manage schemas
// themselves. WithTable names the table and WithSchema its database.
//
// New and Open check the connection at once: a store that cannot work
// fails at start-up with "mysql: connect: <cause>", not at the first
// request.
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
// # Owners
//
// The store implements session.OwnerIndex: an owner column (the empty
// string for none) with an index. Create and Update store the owner in
// their one statement, Touch keeps it, and LoadOwned is one SELECT through
// the index, whose cost grows with that owner's sessions only.
//
// # Guarantees
//
// Every Store method but Cleanup is one SQL statement on the success path,
// executed as a server-side prepared statement (one network round trip once
// the statement is prepared on a pooled connection). Cleanup works in
// bounded batches that lock rows in the same order as every other
// statement, so it never deadlocks with requests or with other servers'
// Cleanups (see Store.Cleanup).
//
// Times are sent as parameters, in UTC, truncated to the microsecond on the
// client (the server would round, moving an access time into the future);
// the database clock is never read. Timestamps are DATETIME(6), so the
// store works past 2038 and whatever the connection's time_zone.
//
// New refuses a handle that would corrupt times (one without parseTime, or
// whose loc is not UTC), naming the DSN parameters to fix. The first use
// (or CreateTable) checks the table's column types and refuses a table that
// would lose data, such as web.py's original one.
//
// Data that does not fit (more than max_allowed_packet, as read at
// construction, minus a little room for the statement, or more than the data
// column holds) is refused with an error wrapping session.ErrTooLarge before
// anything is sent; if the server refuses it anyway (the limit was lowered
// later), its error is mapped to session.ErrTooLarge too. Nothing is ever
// truncated, whatever the sql_mode.
//
// Every error reads "mysql: <op>: <cause>" and wraps its cause: errors.Is
// reaches the session sentinels ("mysql: update: session: version
// conflict: ..."), and errors.As(err, &mysqlErr) with a
// *github.com/go-sql-driver/mysql.MySQLError the server's error.
// Deadlocks (error 1213), which InnoDB can still declare between concurrent
// inserts of a key being deleted, are retried a few times; each statement is
// atomic and autocommitted, so a retry cannot apply anything twice.
package mysql
