package mysql

import (
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Defaults and limits of the options.
const (
	// DefaultTable is the table name used without WithTable: web.py's.
	DefaultTable = "sessions"

	// DefaultCleanupBatch is the number of rows one Cleanup batch deletes
	// without WithCleanupBatch. Small enough that each delete holds its row
	// locks for milliseconds, large enough that a million expired rows take
	// a thousand batches rather than a million.
	DefaultCleanupBatch = 1000

	// MaxCleanupBatch bounds WithCleanupBatch: a batch's keys are the
	// parameters of one prepared statement, which must fit in
	// max_allowed_packet.
	MaxCleanupBatch = 10000

	// DefaultMaxConns is how many connections the pool Open makes holds at
	// most, open and idle alike (WithMaxConns changes it). Every statement
	// of the store is short (tens of microseconds to a commit's fsync), so
	// a few connections serve thousands of requests a second, and requests
	// beyond them wait in the pool for a free one (under the manager's
	// store timeout) rather than opening more. The server's limit is shared
	// by every application server: MySQL's and MariaDB's default
	// max_connections of 151 leaves room for several servers at 16 each
	// plus the application's other pools and an administrator. Keeping as
	// many idle as open is what keeps connections warm: database/sql's
	// default of 2 idle connections closes and reopens connections all the
	// time under concurrent load (see BenchmarkPool in the README).
	DefaultMaxConns = 16

	// DefaultConnMaxLifetime is how long Open's pool uses one connection at
	// most (WithConnMaxLifetime changes it). go-sql-driver/mysql advises
	// less than 5 minutes, so that the pool, not the server's wait_timeout,
	// a proxy or a firewall, ends connections: one ended by the other side
	// is found dead only by the next request that picks it. Reconnecting
	// costs a few milliseconds, and one extra round trip per statement to
	// prepare it again on the new connection.
	DefaultConnMaxLifetime = 3 * time.Minute

	// DefaultConnMaxIdleTime is how long a connection of Open's pool may
	// stay unused before it is closed (WithConnMaxIdleTime changes it): a
	// burst's extra connections go back to the server within a minute.
	DefaultConnMaxIdleTime = time.Minute
)

// An Option configures a Store. New and Open report the first invalid one.
type Option func(*options) error

type options struct {
	schema string // "" means the handle's current database
	table  string
	batch  int
	pool   poolOptions
	// poolSet names the pool options given, which only Open applies: New
	// refuses them rather than ignore them.
	poolSet []string
}

// poolOptions are the settings of the pool Open makes.
type poolOptions struct {
	maxConns             int
	maxLifetime, maxIdle time.Duration
}

func (p poolOptions) apply(db *sql.DB) {
	db.SetMaxOpenConns(p.maxConns)
	db.SetMaxIdleConns(p.maxConns)
	db.SetConnMaxLifetime(p.maxLifetime)
	db.SetConnMaxIdleTime(p.maxIdle)
}

// newOptions applies opts over the defaults. forOpen tells whether the
// pool options may be among them.
func newOptions(opts []Option, forOpen bool) (options, error) {
	op := "new"
	if forOpen {
		op = "open"
	}
	o := options{
		table: DefaultTable,
		batch: DefaultCleanupBatch,
		pool:  poolOptions{DefaultMaxConns, DefaultConnMaxLifetime, DefaultConnMaxIdleTime},
	}
	for _, opt := range opts {
		if opt == nil {
			return o, opError(op, errors.New("nil Option"))
		}
		if err := opt(&o); err != nil {
			return o, opError(op, err)
		}
	}
	if !forOpen && len(o.poolSet) > 0 {
		return o, opError(op, fmt.Errorf("%s applies to the pool Open makes; New uses the application's pool as it is: tune it with its own Set methods (SetMaxOpenConns and the like)", o.poolSet[0]))
	}
	return o, nil
}

// WithTable sets the table's name, default DefaultTable: 1 to 64
// characters of [A-Za-z0-9_$]. It is always quoted in SQL, never spliced
// raw. Use WithSchema to put it in a database other than the handle's
// current one.
func WithTable(name string) Option {
	return func(o *options) error {
		if !validIdent(name) {
			return fmt.Errorf("invalid table name %q: want 1 to 64 characters of [A-Za-z0-9_$] (WithSchema names the database)", name)
		}
		o.table = name
		return nil
	}
}

// WithSchema puts the table in the named database (MySQL's schema), which
// must exist; default: the handle's current database. Same rules as
// WithTable.
func WithSchema(name string) Option {
	return func(o *options) error {
		if !validIdent(name) {
			return fmt.Errorf("invalid database name %q: want 1 to 64 characters of [A-Za-z0-9_$]", name)
		}
		o.schema = name
		return nil
	}
}

// WithCleanupBatch sets how many rows one Cleanup batch deletes at most,
// from 1 to MaxCleanupBatch, default DefaultCleanupBatch. Cleanup repeats
// batches until one comes back short, so the value bounds how long each
// delete holds locks, not how many rows a Cleanup deletes.
func WithCleanupBatch(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxCleanupBatch {
			return fmt.Errorf("cleanup batch must be between 1 and %d, got %d", MaxCleanupBatch, n)
		}
		o.batch = n
		return nil
	}
}

// WithMaxConns sets how many connections the pool Open makes holds at
// most, open and idle alike (default DefaultMaxConns). Only Open takes it:
// an application that passes its own pool to New tunes that pool itself
// (DB returns it).
func WithMaxConns(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("max connections %d: want at least 1", n)
		}
		o.pool.maxConns = n
		o.poolSet = append(o.poolSet, "WithMaxConns")
		return nil
	}
}

// WithConnMaxLifetime sets how long the pool Open makes uses a connection
// at most (default DefaultConnMaxLifetime); 0 means for ever. Only Open
// takes it.
func WithConnMaxLifetime(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("connection max lifetime %v: want 0 (no limit) or more", d)
		}
		o.pool.maxLifetime = d
		o.poolSet = append(o.poolSet, "WithConnMaxLifetime")
		return nil
	}
}

// WithConnMaxIdleTime sets how long a connection of the pool Open makes
// may stay unused before it is closed (default DefaultConnMaxIdleTime); 0
// means for ever. Only Open takes it.
func WithConnMaxIdleTime(d time.Duration) Option {
	return func(o *options) error {
		if d < 0 {
			return fmt.Errorf("connection max idle time %v: want 0 (no limit) or more", d)
		}
		o.pool.maxIdle = d
		o.poolSet = append(o.poolSet, "WithConnMaxIdleTime")
		return nil
	}
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
