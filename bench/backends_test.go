package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/lib/pq"

	"github.com/alexedwards/scs/mysqlstore"
	"github.com/alexedwards/scs/postgresstore"
	"github.com/alexedwards/scs/v2"
	"github.com/alexedwards/scs/v2/memstore"
	"github.com/gorilla/sessions"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
	"github.com/websession/websession/drivers/memory"
	wsmysql "github.com/websession/websession/drivers/mysql"
	wspostgres "github.com/websession/websession/drivers/postgres"
)

// instance is one library over one store, ready to serve requests.
type instance struct {
	lib   lib
	calls *calls // the store's calls
	trips *trips // the SQL connections' round trips; nil for other stores
	// settle, if set, waits until the store's background work caught up
	// with the requests served (the Redis client cache's change messages).
	settle func()
}

// openConfig tunes an instance for a test.
type openConfig struct {
	opts     []session.Option // extra options for our Manager (a fake clock)
	maxConns int              // SQL pool size; 0 means database/sql's default
}

// backend is a library with one of its stores.
type backend struct {
	name string
	ours bool   // websession: the exact targets apply
	db   string // "postgres", "mysql" or "" (needs no server)
	open func(tb testing.TB, cfg openConfig) *instance
}

// backends, in the order of the report: each of ours beside the library
// people use for the same storage.
var backends = []backend{
	{name: "none", open: func(testing.TB, openConfig) *instance { return &instance{lib: noLib{}, calls: new(calls)} }},
	{name: "ours-memory", ours: true, open: func(tb testing.TB, cfg openConfig) *instance {
		store, err := memory.New()
		if err != nil {
			tb.Fatal(err)
		}
		return openOurs(tb, cfg, store, nil)
	}},
	{name: "scs-memstore", open: func(tb testing.TB, _ openConfig) *instance {
		return openSCS(tb, memstore.NewWithCleanupInterval(0), nil)
	}},
	{name: "ours-disk", ours: true, open: func(tb testing.TB, cfg openConfig) *instance {
		return openOurs(tb, cfg, openDisk(tb), nil)
	}},
	{name: "ours-disk-nocache", ours: true, open: func(tb testing.TB, cfg openConfig) *instance {
		return openOurs(tb, cfg, openDisk(tb, disk.WithCacheSize(0)), nil)
	}},
	{name: "gorilla-filesystem", open: func(tb testing.TB, _ openConfig) *instance {
		return openGorilla(tb, sessions.NewFilesystemStore(scratchDir(tb), gorillaKey))
	}},
	{name: "gorilla-cookie", open: func(tb testing.TB, _ openConfig) *instance {
		return openGorilla(tb, sessions.NewCookieStore(gorillaKey))
	}},
	{name: "ours-postgres", ours: true, db: "postgres", open: openOursPostgres},
	{name: "scs-postgres", db: "postgres", open: openSCSPostgres},
	{name: "ours-mysql", ours: true, db: "mysql", open: openOursMySQL},
	{name: "scs-mysql", db: "mysql", open: openSCSMySQL},
}

func backendNamed(name string) backend {
	for _, b := range backends {
		if b.name == name {
			return b
		}
	}
	panic("no backend " + name)
}

// gorillaKey authenticates gorilla's cookies (gorilla requires one; its
// FilesystemStore signs the id, its CookieStore the whole session).
var gorillaKey = []byte("bench-hash-key-0123456789abcdef!")

var discard = slog.New(slog.DiscardHandler)

// openOurs builds a websession Manager over store with the defaults an
// application gets, minus the background cleanup (scs's and gorilla's are
// off too) and the log output.
func openOurs(tb testing.TB, cfg openConfig, store session.Store, tr *trips) *instance {
	tb.Helper()
	c := new(calls)
	opts := append([]session.Option{session.WithCleanupInterval(0), session.WithLogger(discard)}, cfg.opts...)
	m, err := session.New(countingStore{store, c}, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	return &instance{lib: ours{m}, calls: c, trips: tr}
}

// openSCS builds an scs SessionManager over store with its defaults (a
// 24-hour absolute lifetime, no idle timeout, gob encoding).
func openSCS(tb testing.TB, store scs.Store, tr *trips) *instance {
	tb.Helper()
	c := new(calls)
	cs, err := newCountingSCS(store, c)
	if err != nil {
		tb.Fatal(err)
	}
	sm := scs.New()
	sm.Store = cs
	return &instance{lib: scsLib{sm}, calls: c, trips: tr}
}

func openGorilla(tb testing.TB, store sessions.Store) *instance {
	c := new(calls)
	return &instance{lib: gorillaLib{countingGorilla{store, c}, "session"}, calls: c}
}

// openDisk opens our disk store in a scratch dir: read cache on unless opts
// turn it off, durability (fsync) at its default, off; gorilla's
// FilesystemStore does not fsync either.
func openDisk(tb testing.TB, opts ...disk.Option) *disk.Store {
	tb.Helper()
	s, err := disk.New(scratchDir(tb), append([]disk.Option{disk.WithLogger(discard)}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

// Databases.

func postgresDSN() string {
	if dsn := os.Getenv("WEBSESSION_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "postgres://root@127.0.0.1:5432/test?sslmode=disable"
}

func mysqlDSN() string {
	if dsn := os.Getenv("WEBSESSION_MYSQL_DSN"); dsn != "" {
		return dsn
	}
	return "root@tcp(127.0.0.1:3306)/test?parseTime=true&loc=UTC"
}

var (
	probeOnce sync.Map // db kind -> func() error
)

// requireDB skips tb (or fails it, with CI=true) if the database server of
// kind is unreachable. The server is probed once per process.
func requireDB(tb testing.TB, kind string) {
	tb.Helper()
	f, _ := probeOnce.LoadOrStore(kind, sync.OnceValue(func() error { return probe(kind) }))
	err := f.(func() error)()
	if err == nil {
		return
	}
	env, dsn := "WEBSESSION_POSTGRES_DSN", redactedDSN(kind, postgresDSN())
	if kind == "mysql" {
		env, dsn = "WEBSESSION_MYSQL_DSN", redactedDSN(kind, mysqlDSN())
	}
	msg := fmt.Sprintf("%s unreachable at %q: %v; start the server or set %s", kind, dsn, err, env)
	if os.Getenv("CI") == "true" {
		tb.Fatalf("CI=true: %s", msg)
	}
	tb.Skipf("SKIPPING the %s backends: %s (CI=true makes this a failure)", kind, msg)
}

// redactedDSN is dsn fit for a log: without its password, if any.
func redactedDSN(kind, dsn string) string {
	if kind == "mysql" {
		cfg, err := mysqldrv.ParseDSN(dsn)
		if err != nil {
			return "(unparsable DSN)"
		}
		if cfg.Passwd != "" {
			cfg.Passwd = "xxxxx"
		}
		return cfg.FormatDSN()
	}
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "(DSN not shown: not a URL)"
}

func probe(kind string) error {
	db, err := adminDB(kind)
	if err != nil {
		return err
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return db.PingContext(ctx)
}

// adminDB opens an uncounted pool for creating and dropping what the
// benchmarks use.
func adminDB(kind string) (*sql.DB, error) {
	if kind == "postgres" {
		c, err := pq.NewConnector(postgresDSN())
		if err != nil {
			return nil, fmt.Errorf("WEBSESSION_POSTGRES_DSN: %w", err)
		}
		return sql.OpenDB(c), nil
	}
	cfg, err := mysqlConfig("", nil)
	if err != nil {
		return nil, err
	}
	c, err := mysqldrv.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(c), nil
}

func mysqlConfig(dbName string, tr *trips) (*mysqldrv.Config, error) {
	cfg, err := mysqldrv.ParseDSN(mysqlDSN())
	if err != nil {
		return nil, fmt.Errorf("WEBSESSION_MYSQL_DSN: %w", err)
	}
	cfg.ParseTime, cfg.Loc = true, time.UTC // what our driver requires; scs's does not mind
	if dbName != "" {
		cfg.DBName = dbName
	}
	if tr != nil {
		cfg.DialFunc = tr.DialContext
	}
	return cfg, nil
}

func uniqueName() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "ws_bench_" + hex.EncodeToString(b[:])
}

func setupCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	tb.Cleanup(cancel)
	return ctx
}

// scratch creates a PostgreSQL schema or a MySQL database with a unique
// name, dropped when tb ends, and returns its name and an admin pool.
func scratch(tb testing.TB, kind string) (string, *sql.DB) {
	tb.Helper()
	requireDB(tb, kind)
	admin, err := adminDB(kind)
	if err != nil {
		tb.Fatal(err)
	}
	name := uniqueName()
	what := "SCHEMA"
	if kind == "mysql" {
		what = "DATABASE"
	}
	ctx := setupCtx(tb)
	if _, err := admin.ExecContext(ctx, "CREATE "+what+" "+name); err != nil {
		admin.Close()
		tb.Fatalf("create %s %s: %v", strings.ToLower(what), name, err)
	}
	// Registered first, so it runs after the pools below are closed.
	tb.Cleanup(func() {
		defer admin.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		drop := "DROP " + what + " IF EXISTS " + name
		if kind == "postgres" {
			drop += " CASCADE"
		}
		if _, err := admin.ExecContext(ctx, drop); err != nil {
			tb.Errorf("cleanup: %s: %v", drop, err)
		}
	})
	return name, admin
}

// countedPool opens a pool on database or schema name whose round trips
// are counted.
func countedPool(tb testing.TB, kind, name string, cfg openConfig) (*sql.DB, *trips) {
	tb.Helper()
	tr := new(trips)
	var db *sql.DB
	if kind == "postgres" {
		c, err := pq.NewConnector(postgresDSN())
		if err != nil {
			tb.Fatal(err)
		}
		c.Dialer(tr)
		db = sql.OpenDB(c)
	} else {
		mc, err := mysqlConfig(name, tr)
		if err != nil {
			tb.Fatal(err)
		}
		c, err := mysqldrv.NewConnector(mc)
		if err != nil {
			tb.Fatal(err)
		}
		db = sql.OpenDB(c)
	}
	if cfg.maxConns > 0 {
		db.SetMaxOpenConns(cfg.maxConns)
		db.SetMaxIdleConns(cfg.maxConns)
	}
	tb.Cleanup(func() { db.Close() })
	return db, tr
}

func openOursPostgres(tb testing.TB, cfg openConfig) *instance {
	schema, _ := scratch(tb, "postgres")
	db, tr := countedPool(tb, "postgres", schema, cfg)
	s, err := wspostgres.New(setupCtx(tb), db, wspostgres.WithSchema(schema))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.CreateTable(setupCtx(tb)); err != nil {
		tb.Fatal(err)
	}
	return openOurs(tb, cfg, s, tr)
}

// The scs stores' tables, as their READMEs give them.
const (
	scsPostgresTable = `CREATE TABLE %s.sessions (token TEXT PRIMARY KEY, data BYTEA NOT NULL, expiry TIMESTAMPTZ NOT NULL);
CREATE INDEX sessions_expiry_idx ON %[1]s.sessions (expiry);`
	scsMySQLTable = `CREATE TABLE %s.sessions (token CHAR(43) PRIMARY KEY, data BLOB NOT NULL, expiry TIMESTAMP(6) NOT NULL)`
	scsMySQLIndex = `CREATE INDEX sessions_expiry_idx ON %s.sessions (expiry)`
)

func openSCSPostgres(tb testing.TB, cfg openConfig) *instance {
	schema, admin := scratch(tb, "postgres")
	if _, err := admin.ExecContext(setupCtx(tb), fmt.Sprintf(scsPostgresTable, schema)); err != nil {
		tb.Fatal(err)
	}
	db, tr := countedPool(tb, "postgres", schema, cfg)
	// postgresstore takes a table name, which we qualify with the schema.
	store := postgresstore.NewWithConfig(db, postgresstore.Config{TableName: schema + ".sessions"})
	return openSCS(tb, store, tr)
}

func openOursMySQL(tb testing.TB, cfg openConfig) *instance {
	name, _ := scratch(tb, "mysql")
	db, tr := countedPool(tb, "mysql", name, cfg)
	ctx := setupCtx(tb)
	s, err := wsmysql.New(ctx, db)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	if err := s.CreateTable(ctx); err != nil {
		tb.Fatal(err)
	}
	return openOurs(tb, cfg, s, tr)
}

func openSCSMySQL(tb testing.TB, cfg openConfig) *instance {
	// mysqlstore's table name is fixed ("sessions", in the connection's
	// database), hence a database of its own.
	name, admin := scratch(tb, "mysql")
	ctx := setupCtx(tb)
	for _, q := range []string{scsMySQLTable, scsMySQLIndex} {
		if _, err := admin.ExecContext(ctx, fmt.Sprintf(q, name)); err != nil {
			tb.Fatal(err)
		}
	}
	db, tr := countedPool(tb, "mysql", name, cfg)
	return openSCS(tb, mysqlstore.NewWithCleanupInterval(db, 0), tr)
}
