package postgres

import (
	"database/sql"
	"fmt"
	"regexp"
	"time"
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

	// DefaultMaxConns is how many connections the pool Open makes holds at
	// most, open and idle alike (WithMaxConns changes it). Every statement
	// of the store is short (tens of microseconds to a commit's fsync), so
	// a few connections serve thousands of requests a second, and requests
	// beyond them wait in the pool for a free one (under the manager's
	// store timeout) rather than opening more. The server's own limit is
	// shared by every application server: PostgreSQL's default
	// max_connections of 100 (3 of them reserved for superusers) leaves
	// room for five servers at 16 each plus the application's other pools
	// and an administrator. Keeping as many idle as open is what keeps
	// connections warm: database/sql's default of 2 idle connections
	// closes and reopens connections all the time under concurrent load
	// (see BenchmarkPool in the README).
	DefaultMaxConns = 16

	// DefaultConnMaxLifetime is how long Open's pool uses one connection at
	// most (WithConnMaxLifetime changes it): long enough that reconnecting
	// (a few milliseconds, and one extra round trip per statement to
	// prepare it again) is rare, short enough that the pool follows a
	// fail-over or a DNS change and that no backend grows its caches for
	// days.
	DefaultConnMaxLifetime = 30 * time.Minute

	// DefaultConnMaxIdleTime is how long a connection of Open's pool may
	// stay unused before it is closed (WithConnMaxIdleTime changes it): a
	// burst's extra connections go back to the server within minutes,
	// before a firewall or a pooler in between drops them silently.
	DefaultConnMaxIdleTime = 5 * time.Minute

	// maxTableLen leaves room for the "_atime_idx" and "_owner_idx"
	// suffixes of the index names within PostgreSQL's 63-byte
	// identifiers: a longer name would be truncated, and two long table
	// names could then share an index name, making CREATE INDEX IF NOT
	// EXISTS skip an index that does not exist.
	maxTableLen = 63 - len(atimeIndexSuffix)
)

// identRE is what WithTable and WithSchema accept: a plain SQL identifier.
// Names are quoted as well (pq.QuoteIdentifier), so case is kept, but no
// name needs quoting to be safe, and none can surprise a DBA.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// An Option configures a Store. New and Open report the first invalid one.
type Option func(*options) error

type options struct {
	schema string
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
			return o, opError(op, errNilOption)
		}
		if err := opt(&o); err != nil {
			return o, opError(op, err)
		}
	}
	if !forOpen && len(o.poolSet) > 0 {
		return o, opError("new", fmt.Errorf("%s applies to the pool Open makes; New uses the application's pool as it is: tune it with its own Set methods (SetMaxOpenConns and the like)", o.poolSet[0]))
	}
	return o, nil
}

// WithTable sets the table name (default DefaultTable). It must be a plain
// identifier, [A-Za-z_][A-Za-z0-9_]*, of at most 53 bytes (the index names
// add a suffix within PostgreSQL's 63). It is quoted in every statement,
// so "Sessions" and "sessions" are two tables.
func WithTable(name string) Option {
	return func(o *options) error {
		if !identRE.MatchString(name) || len(name) > maxTableLen {
			return fmt.Errorf("invalid table name %q: want [A-Za-z_][A-Za-z0-9_]*, at most %d bytes", name, maxTableLen)
		}
		o.table = name
		return nil
	}
}

// WithSchema puts the table in the named schema, which must exist. Without
// it the table name is unqualified and PostgreSQL resolves it through the
// connection's search_path.
func WithSchema(name string) Option {
	return func(o *options) error {
		if !identRE.MatchString(name) || len(name) > 63 {
			return fmt.Errorf("invalid schema name %q: want [A-Za-z_][A-Za-z0-9_]*, at most 63 bytes", name)
		}
		o.schema = name
		return nil
	}
}

// WithCleanupBatch sets how many rows each Cleanup statement deletes at
// most, 1 to MaxCleanupBatch (default DefaultCleanupBatch). Smaller batches
// hold fewer locks for a shorter time; larger ones need fewer round trips.
func WithCleanupBatch(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxCleanupBatch {
			return fmt.Errorf("cleanup batch %d out of range 1..%d", n, MaxCleanupBatch)
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
