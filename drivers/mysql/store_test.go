package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	"github.com/jmoiron/sqlx"
	session "github.com/websession/websession/core"
)

// t0 has sub-microsecond digits that round up and a zone far from UTC.
var t0 = time.Date(2041, time.March, 7, 13, 45, 12, 999999999, time.FixedZone("UTC+05:45", 5*3600+45*60))

func rec(data string, at time.Time) session.Record {
	return session.Record{Data: []byte(data), ATime: at, Created: at}
}

func mustCreate(t *testing.T, s *Store, key string, r session.Record) {
	t.Helper()
	if err := s.Create(testCtx(t), key, r); err != nil {
		t.Fatalf("Create(%s): %v", key, err)
	}
}

func mustLoad(t *testing.T, s *Store, key string) session.Record {
	t.Helper()
	r, err := s.Load(testCtx(t), key)
	if err != nil {
		t.Fatalf("Load(%s): %v", key, err)
	}
	return r
}

func TestNewRefusesHandlesThatCorruptTimes(t *testing.T) {
	requireDB(t)
	ctx := testCtx(t)
	cases := []struct {
		name   string
		change func(*mysqldrv.Config)
		want   string
	}{
		{"no parseTime", func(c *mysqldrv.Config) { c.ParseTime = false }, "parseTime=true"},
		{"loc not UTC", func(c *mysqldrv.Config) { c.Loc = time.FixedZone("UTC-07", -7*3600) }, "loc=UTC"},
		{"loc east of UTC", func(c *mysqldrv.Config) { c.Loc = time.FixedZone("UTC+13", 13*3600) }, "loc=UTC"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(ctx, openPool(t, tc.change))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want an error naming %s", err, tc.want)
			}
		})
	}
	t.Run("good handle", func(t *testing.T) {
		s, err := New(ctx, openPool(t, nil))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var packet int
		if err := s.DB().QueryRowContext(ctx, "SELECT @@max_allowed_packet").Scan(&packet); err != nil {
			t.Fatal(err)
		}
		if got, want := s.MaxDataSize(), packet-statementOverhead; got != want {
			t.Fatalf("MaxDataSize = %d, want max_allowed_packet %d - %d", got, packet, statementOverhead)
		}
	})
	t.Run("nil", func(t *testing.T) {
		if _, err := New(ctx, (*sql.DB)(nil)); err == nil {
			t.Fatal("New(nil) succeeded")
		}
		if _, err := New(ctx, (*sqlx.DB)(nil)); err == nil {
			t.Fatal("New((*sqlx.DB)(nil)) succeeded")
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		db, err := sql.Open("mysql", "root@tcp(127.0.0.1:1)/test?parseTime=true&timeout=2s")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := New(ctx, db); err == nil || !strings.HasPrefix(err.Error(), "mysql: connect: ") {
			t.Fatalf("New on an unreachable server: %v, want a connect error", err)
		}
	})
}

func TestOpenForcesParseTimeAndUTC(t *testing.T) {
	requireDB(t)
	cfg := testConfig(t)
	cfg.ParseTime = false
	kathmandu, err := time.LoadLocation("Asia/Kathmandu")
	if err != nil {
		t.Skipf("no zone database: %v", err)
	}
	cfg.Loc = kathmandu
	dsn := cfg.FormatDSN()
	if !strings.Contains(dsn, "loc=Asia%2FKathmandu") {
		t.Fatalf("test DSN %q lost its loc", dsn)
	}
	ctx := testCtx(t)
	s, err := Open(ctx, dsn, WithTable("ws_open"))
	if err != nil {
		t.Fatal(err)
	}
	freshTable(t, openPool(t, nil), "ws_open")
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "k", rec("x", t0))
	if got := mustLoad(t, s, "k"); !got.ATime.Equal(t0.Truncate(time.Microsecond)) {
		t.Fatalf("ATime = %v, want %v", got.ATime, t0.Truncate(time.Microsecond))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Open's pool is the store's: closed with it.
	if err := s.DB().PingContext(ctx); err == nil {
		t.Fatal("Open's pool still usable after Close")
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrClosed) {
		t.Fatalf("Load after Close: %v, want ErrClosed", err)
	}
	if _, err := Open(ctx, "not a dsn"); err == nil {
		t.Fatal("Open accepted a malformed DSN")
	}
}

func TestNewSqlxAndCloseKeepsCallersPool(t *testing.T) {
	ctx := testCtx(t)
	db := openPool(t, nil)
	s, err := New(ctx, sqlxDB(db), WithTable("ws_newx"))
	if err != nil {
		t.Fatal(err)
	}
	freshTable(t, db, "ws_newx")
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "k", rec("x", t0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctx); err != nil {
		t.Fatalf("Close closed the caller's pool: %v", err)
	}
	for name, err := range map[string]error{
		"Create":      s.Create(ctx, "j", rec("x", t0)),
		"Update":      s.Update(ctx, "k", session.Record{ATime: t0, Version: 1}),
		"Touch":       s.Touch(ctx, "k", t0),
		"Delete":      s.Delete(ctx, "k"),
		"CreateTable": s.CreateTable(ctx),
	} {
		if !errors.Is(err, session.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := s.Cleanup(ctx, t0); !errors.Is(err, session.ErrClosed) {
		t.Errorf("Cleanup after Close: %v, want ErrClosed", err)
	}
}

func TestTableNames(t *testing.T) {
	ctx := testCtx(t)
	db := openPool(t, nil)
	for _, name := range []string{"", "a`b", "a b", "x;DROP TABLE y", "t--", "a.b", ".t", "t.", "café", strings.Repeat("t", 65)} {
		if _, err := New(ctx, db, WithTable(name)); err == nil || !strings.HasPrefix(err.Error(), "mysql: new: invalid table name") {
			t.Errorf("WithTable(%q): %v", name, err)
		}
		if _, err := New(ctx, db, WithSchema(name)); err == nil {
			t.Errorf("WithSchema(%q) accepted", name)
		}
	}
	for _, n := range []int{0, -1, MaxCleanupBatch + 1} {
		if _, err := New(ctx, db, WithCleanupBatch(n)); err == nil {
			t.Errorf("WithCleanupBatch(%d) accepted", n)
		}
	}
	// WithSchema reaches the named database, whatever the current one.
	var dbName string
	if err := db.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil || dbName == "" {
		t.Fatalf("no current database (%v); the test DSN must name one", err)
	}
	freshTable(t, db, "ws_qualified$1")
	s, err := New(ctx, openPool(t, func(c *mysqldrv.Config) { c.DBName = "" }), WithSchema(dbName), WithTable("ws_qualified$1"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, want := s.Table(), "`"+dbName+"`.`ws_qualified$1`"; got != want {
		t.Fatalf("Table() = %s, want %s", got, want)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "k", rec("x", t0))
	var n int
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM `ws_qualified$1`").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in ws_qualified$1: %d, %v", n, err)
	}
}

func TestPoolOptions(t *testing.T) {
	ctx := testCtx(t)
	db := openPool(t, nil)
	for _, o := range []Option{WithMaxConns(0), WithConnMaxLifetime(-time.Second), WithConnMaxIdleTime(-time.Second), nil} {
		if _, err := Open(ctx, testDSN(), o); err == nil {
			t.Errorf("Open accepted an invalid pool option")
		}
	}
	// The pool options belong to the pool Open makes: New refuses them
	// rather than leave the application's pool as it is unsaid.
	for name, o := range map[string]Option{"WithMaxConns": WithMaxConns(4), "WithConnMaxLifetime": WithConnMaxLifetime(time.Minute), "WithConnMaxIdleTime": WithConnMaxIdleTime(time.Minute)} {
		if _, err := New(ctx, db, o); err == nil || !strings.Contains(err.Error(), name+" applies to the pool Open makes") {
			t.Errorf("New with %s: %v", name, err)
		}
	}
	s, err := Open(ctx, testDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.DB().Stats().MaxOpenConnections; got != DefaultMaxConns {
		t.Errorf("Open's pool holds up to %d connections, want DefaultMaxConns (%d)", got, DefaultMaxConns)
	}
	s2, err := Open(ctx, testDSN(), WithMaxConns(3), WithConnMaxLifetime(time.Minute), WithConnMaxIdleTime(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.DB().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("WithMaxConns(3): pool holds up to %d", got)
	}
}

// TestConnectErrors: New and Open fail at once, with an error that reads
// "mysql: connect: ..." and wraps the cause, when no connection can be
// made.
func TestConnectErrors(t *testing.T) {
	ctx := testCtx(t)
	unreachable := testConfig(t)
	unreachable.Addr = "127.0.0.1:1"
	unreachable.Timeout = 5 * time.Second
	refused := testConfig(t)
	refused.User = "wsr_nobody_" + fmt.Sprint(time.Now().UnixNano()%1e9)
	for _, tc := range []struct {
		name  string
		cfg   *mysqldrv.Config
		check func(error) bool
	}{
		{"unreachable", unreachable, func(err error) bool { var oe *net.OpError; return errors.As(err, &oe) }},
		{"login refused", refused, func(err error) bool {
			var me *mysqldrv.MySQLError
			return errors.As(err, &me) && string(me.SQLState[:]) == "28000" // 1045, or MariaDB's 1698
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.cfg.FormatDSN())
			if err == nil || !strings.HasPrefix(err.Error(), "mysql: connect: ") || !tc.check(err) {
				t.Errorf("Open: %v, want a \"mysql: connect: \" error wrapping the cause", err)
			}
			conn, err := mysqldrv.NewConnector(tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(conn)
			defer db.Close()
			_, err = New(ctx, db)
			if err == nil || !strings.HasPrefix(err.Error(), "mysql: connect: ") || !tc.check(err) {
				t.Errorf("New: %v, want a \"mysql: connect: \" error wrapping the cause", err)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

func TestCreateTableConcurrently(t *testing.T) {
	ctx := testCtx(t)
	const table = "ws_concurrent_create"
	freshTable(t, openPool(t, nil), table)
	const pools, perPool = 4, 3
	var stores []*Store
	for range pools {
		s := storeOn(t, openPool(t, nil), table)
		stores = append(stores, s)
	}
	start := make(chan struct{})
	errs := make(chan error, pools*perPool)
	var wg sync.WaitGroup
	for _, s := range stores {
		for range perPool {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs <- s.CreateTable(ctx)
			}()
		}
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	mustCreate(t, stores[0], "k", rec("x", t0))
	if got := mustLoad(t, stores[pools-1], "k"); string(got.Data) != "x" {
		t.Fatalf("other pool loaded %q", got.Data)
	}
}

func TestMissingTableThenCreate(t *testing.T) {
	ctx := testCtx(t)
	const table = "ws_missing"
	freshTable(t, openPool(t, nil), table)
	s := storeOn(t, openPool(t, nil), table)
	_, err := s.Load(ctx, "k")
	if err == nil || errors.Is(err, session.ErrNotFound) || !strings.Contains(err.Error(), "CreateTable") {
		t.Fatalf("Load without a table: %v, want an error pointing to CreateTable", err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after CreateTable: %v, want ErrNotFound", err)
	}
}

func TestRefusesTablesThatLoseData(t *testing.T) {
	ctx := testCtx(t)
	db := openPool(t, nil)
	cases := []struct {
		name, ddl string
		want      []string
	}{
		{"webpy", "session_id CHAR(128) UNIQUE NOT NULL, atime TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, data TEXT",
			[]string{"session_id is char", "data is text", "atime is timestamp", "no created", "no version"}},
		{"seconds", "session_id VARBINARY(128) PRIMARY KEY, atime DATETIME NOT NULL, data LONGBLOB NOT NULL, created DATETIME(3) NOT NULL, version BIGINT UNSIGNED NOT NULL",
			[]string{"atime is datetime(0)", "created is datetime(3)"}},
		{"short key", "session_id VARBINARY(64) PRIMARY KEY, atime DATETIME(6) NOT NULL, data LONGBLOB NOT NULL, created DATETIME(6) NOT NULL, version BIGINT UNSIGNED NOT NULL",
			[]string{"session_id holds 64 characters"}},
		{"not unique", "session_id VARBINARY(128) NOT NULL, atime DATETIME(6) NOT NULL, data LONGBLOB NOT NULL, created DATETIME(6) NOT NULL, version BIGINT UNSIGNED NOT NULL",
			[]string{"not the primary key"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			table := fmt.Sprintf("ws_unsafe_%d", i)
			freshTable(t, db, table)
			if _, err := db.ExecContext(ctx, "CREATE TABLE `"+table+"` ("+tc.ddl+")"); err != nil {
				t.Fatal(err)
			}
			s := storeOn(t, openPool(t, nil), table)
			err := s.CreateTable(ctx)
			if err == nil {
				t.Fatal("CreateTable accepted the table")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if err := s.Create(ctx, "k", rec("x", t0)); err == nil {
				t.Fatal("Create succeeded on the unsafe table")
			}
		})
	}
}

func TestInvalidKeys(t *testing.T) {
	s := newTestStore(t, "ws_keys", nil)
	ctx := testCtx(t)
	for _, key := range []string{"", "a b", "a'b", "a\x00b", "ä", "../x", strings.Repeat("k", session.MaxKeyLen+1)} {
		if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Load(%q): %v", key, err)
		}
		if err := s.Create(ctx, key, rec("x", t0)); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Create(%q): %v", key, err)
		}
		if err := s.Update(ctx, key, rec("x", t0)); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Update(%q): %v", key, err)
		}
		if err := s.Touch(ctx, key, t0); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Touch(%q): %v", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, session.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v", key, err)
		}
	}
	// Keys are case-sensitive, and the longest key fits.
	long := strings.Repeat("K", session.MaxKeyLen)
	mustCreate(t, s, long, rec("upper", t0))
	mustCreate(t, s, strings.ToLower(long), rec("lower", t0))
	if got := mustLoad(t, s, long); string(got.Data) != "upper" {
		t.Fatalf("Load(upper) = %q", got.Data)
	}
}

// TestTimesStoredAsUTCMicroseconds looks at the raw column: UTC wall time,
// truncated (a rounding server would store the next second for t0).
func TestTimesStoredAsUTCMicroseconds(t *testing.T) {
	for _, tz := range []string{"SYSTEM", "'+13:00'", "'-12:00'"} {
		t.Run(tz, func(t *testing.T) {
			s := newTestStore(t, "ws_utc", func(c *mysqldrv.Config) { c.Params = map[string]string{"time_zone": tz} })
			ctx := testCtx(t)
			created := t0.Add(-time.Hour)
			mustCreate(t, s, "k", session.Record{Data: []byte("x"), ATime: t0, Created: created})
			var atime, ctime string
			if err := s.DB().QueryRowContext(ctx, "SELECT CAST(atime AS CHAR), CAST(created AS CHAR) FROM ws_utc").Scan(&atime, &ctime); err != nil {
				t.Fatal(err)
			}
			if want := "2041-03-07 08:00:12.999999"; atime != want {
				t.Errorf("stored atime %s, want %s", atime, want)
			}
			if want := "2041-03-07 07:00:12.999999"; ctime != want {
				t.Errorf("stored created %s, want %s", ctime, want)
			}
			got := mustLoad(t, s, "k")
			if !got.ATime.Equal(t0.Truncate(time.Microsecond)) || !got.Created.Equal(created.Truncate(time.Microsecond)) {
				t.Errorf("loaded %v / %v", got.ATime, got.Created)
			}
			if err := s.Touch(ctx, "k", t0.Add(time.Nanosecond)); err != nil {
				t.Fatal(err)
			}
			if got := mustLoad(t, s, "k"); got.ATime.After(t0.Add(time.Nanosecond)) {
				t.Errorf("atime moved into the future: %v", got.ATime)
			}
		})
	}
}

func TestTimesOutsideDatetimeRange(t *testing.T) {
	s := newTestStore(t, "ws_range", func(c *mysqldrv.Config) { c.Params = map[string]string{"sql_mode": "''"} })
	ctx := testCtx(t)
	good := rec("x", t0)
	mustCreate(t, s, "k", good)
	for _, bad := range []time.Time{{}, time.Date(999, 12, 31, 23, 59, 59, 0, time.UTC), time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		r := good
		r.ATime = bad
		if err := s.Create(ctx, "new", r); err == nil {
			t.Errorf("Create with atime %v succeeded", bad)
		}
		r = good
		r.Created = bad
		if err := s.Create(ctx, "new", r); err == nil {
			t.Errorf("Create with created %v succeeded", bad)
		}
		r = good
		r.ATime, r.Version = bad, 1
		if err := s.Update(ctx, "k", r); err == nil {
			t.Errorf("Update with atime %v succeeded", bad)
		}
		if err := s.Touch(ctx, "k", bad); err == nil {
			t.Errorf("Touch with %v succeeded", bad)
		}
	}
	if _, err := s.Load(ctx, "new"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("a refused Create left a row: %v", err)
	}
	if got := mustLoad(t, s, "k"); got.Version != 1 || !got.ATime.Equal(t0.Truncate(time.Microsecond)) {
		t.Fatalf("refused writes changed the record: %+v", got)
	}
	// Cutoffs outside the range still mean what they say.
	if n, err := s.Cleanup(ctx, time.Time{}); n != 0 || err != nil {
		t.Fatalf("Cleanup(zero) = %d, %v", n, err)
	}
	if n, err := s.Cleanup(ctx, time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)); n != 1 || err != nil {
		t.Fatalf("Cleanup(year 12000) = %d, %v", n, err)
	}
}

func TestDuplicateKeyKeepsServerError(t *testing.T) {
	s := newTestStore(t, "ws_dup", nil)
	mustCreate(t, s, "k", rec("first", t0))
	err := s.Create(testCtx(t), "k", rec("second", t0))
	if !errors.Is(err, session.ErrExists) {
		t.Fatalf("Create of a taken key: %v, want ErrExists", err)
	}
	var me *mysqldrv.MySQLError
	if !errors.As(err, &me) || me.Number != 1062 {
		t.Fatalf("cause not reachable: %v", err)
	}
	if got := mustLoad(t, s, "k"); string(got.Data) != "first" {
		t.Fatalf("record changed to %q", got.Data)
	}
}

func TestOtherServerErrorsKeepTheirCause(t *testing.T) {
	ctx := testCtx(t)
	s := newTestStore(t, "ws_cause", nil)
	mustCreate(t, s, "k", rec("x", t0))
	// A column dropped under the prepared statements: the server re-prepares
	// and fails with its own error.
	if _, err := s.DB().ExecContext(ctx, "ALTER TABLE ws_cause DROP COLUMN created"); err != nil {
		t.Fatal(err)
	}
	_, err := s.Load(ctx, "k")
	var me *mysqldrv.MySQLError
	if !errors.As(err, &me) || me.Number != 1054 { // ER_BAD_FIELD_ERROR
		t.Fatalf("Load: %v, want the server's 1054 reachable with errors.As", err)
	}
}

func TestTooLarge(t *testing.T) {
	// Strict mode off: the server itself would truncate to the column's
	// size with only a warning, so the store's own checks must hold.
	noStrict := func(c *mysqldrv.Config) { c.Params = map[string]string{"sql_mode": "''"} }

	t.Run("over max_allowed_packet", func(t *testing.T) {
		s := newTestStore(t, "ws_big", noStrict)
		ctx := testCtx(t)
		var mode string
		var packet int
		if err := s.DB().QueryRowContext(ctx, "SELECT @@session.sql_mode, @@max_allowed_packet").Scan(&mode, &packet); err != nil {
			t.Fatal(err)
		}
		if mode != "" {
			t.Fatalf("sql_mode is %q, want strict mode off", mode)
		}
		mustCreate(t, s, "k", rec("old", t0))
		over := bytes.Repeat([]byte{0xfe}, packet+1)
		err := s.Update(ctx, "k", session.Record{Data: over, ATime: t0, Version: 1})
		if !errors.Is(err, session.ErrTooLarge) || !strings.Contains(err.Error(), "max_allowed_packet") {
			t.Fatalf("Update with %d bytes: %v, want ErrTooLarge naming max_allowed_packet", len(over), err)
		}
		if err := s.Create(ctx, "new", rec(string(over), t0)); !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("Create with %d bytes: %v, want ErrTooLarge", len(over), err)
		}
		if got := mustLoad(t, s, "k"); string(got.Data) != "old" || got.Version != 1 {
			t.Fatalf("old record changed: %q v%d", got.Data, got.Version)
		}
		if _, err := s.Load(ctx, "new"); !errors.Is(err, session.ErrNotFound) {
			t.Fatalf("refused Create stored something: %v", err)
		}

		// The largest accepted payload comes back byte-exact.
		most := bytes.Repeat([]byte{0, 0xff, 'x'}, s.MaxDataSize()/3+1)[:s.MaxDataSize()]
		if err := s.Update(ctx, "k", session.Record{Data: most, ATime: t0, Version: 1}); err != nil {
			t.Fatalf("Update with MaxDataSize() = %d bytes: %v", len(most), err)
		}
		if got := mustLoad(t, s, "k"); !bytes.Equal(got.Data, most) {
			t.Fatalf("loaded %d bytes, stored %d", len(got.Data), len(most))
		}

		// If the limit were lowered after construction, the server's own
		// refusal must be just as clear. Lift the store's check to see it.
		st, err := s.prepared(ctx, "test")
		if err != nil {
			t.Fatal(err)
		}
		st.maxData = 1 << 30
		err = s.Update(ctx, "k", session.Record{Data: over, ATime: t0, Version: 2})
		var me *mysqldrv.MySQLError
		if !errors.Is(err, session.ErrTooLarge) || !errors.As(err, &me) || me.Number != 1153 {
			t.Fatalf("server-side refusal: %v, want ErrTooLarge wrapping error 1153", err)
		}
		if got := mustLoad(t, s, "k"); !bytes.Equal(got.Data, most) || got.Version != 2 {
			t.Fatalf("record changed after a refused write: %d bytes v%d", len(got.Data), got.Version)
		}
	})

	t.Run("over the data column", func(t *testing.T) {
		// A table someone made with a BLOB (64 KiB) data column.
		const table = "ws_blob"
		admin := openPool(t, nil)
		freshTable(t, admin, table)
		ctx := testCtx(t)
		if _, err := admin.ExecContext(ctx, "CREATE TABLE "+table+` (session_id VARBINARY(128) PRIMARY KEY,
			atime DATETIME(6) NOT NULL, data BLOB NOT NULL, created DATETIME(6) NOT NULL, version BIGINT UNSIGNED NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		s := storeOn(t, openPool(t, noStrict), table)
		if err := s.CreateTable(ctx); err != nil {
			t.Fatal(err)
		}
		if got := s.MaxDataSize(); got != 65535 {
			t.Fatalf("MaxDataSize() = %d, want BLOB's 65535", got)
		}
		fits := bytes.Repeat([]byte{7}, 65535)
		mustCreate(t, s, "k", rec(string(fits), t0))
		err := s.Update(ctx, "k", session.Record{Data: append(fits, 8), ATime: t0, Version: 1})
		if !errors.Is(err, session.ErrTooLarge) {
			t.Fatalf("Update with 65536 bytes into BLOB: %v, want ErrTooLarge", err)
		}
		if got := mustLoad(t, s, "k"); !bytes.Equal(got.Data, fits) || got.Version != 1 {
			t.Fatalf("record changed: %d bytes v%d", len(got.Data), got.Version)
		}
	})
}

func TestNilDataIsEmpty(t *testing.T) {
	s := newTestStore(t, "ws_nil", nil)
	mustCreate(t, s, "k", session.Record{ATime: t0, Created: t0})
	got := mustLoad(t, s, "k")
	if got.Data == nil || len(got.Data) != 0 {
		t.Fatalf("Data = %#v, want empty and non-nil", got.Data)
	}
	if err := s.Update(testCtx(t), "k", session.Record{ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
}

func TestTouchSameATime(t *testing.T) {
	// Without clientFoundRows the server reports 0 changed rows when the
	// atime is already the one sent; that is still a successful Touch.
	s := newTestStore(t, "ws_touch_same", nil)
	mustCreate(t, s, "k", rec("x", t0))
	if err := s.Touch(testCtx(t), "k", t0); err != nil {
		t.Fatalf("Touch to the stored atime: %v", err)
	}
	if err := s.Touch(testCtx(t), "gone", t0); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch of a missing key: %v", err)
	}
}

func TestCleanupBatches(t *testing.T) {
	var rt roundTrips
	s := newTestStore(t, "ws_batches", func(c *mysqldrv.Config) { c.DialFunc = rt.dialer() }, WithCleanupBatch(7))
	s.DB().SetMaxOpenConns(1) // one connection: every statement already prepared on it
	ctx := testCtx(t)
	for i := range 50 {
		mustCreate(t, s, fmt.Sprintf("old%d", i), rec("x", t0.Add(-time.Hour-time.Duration(i)*time.Second)))
	}
	for i := range 10 {
		mustCreate(t, s, fmt.Sprintf("live%d", i), rec("x", t0.Add(time.Duration(i)*time.Microsecond)))
	}
	before := rt.count()
	n, err := s.Cleanup(ctx, t0)
	if err != nil || n != 50 {
		t.Fatalf("Cleanup = %d, %v; want 50", n, err)
	}
	// 50 rows in batches of 7: seven full batches and a short one, each a
	// read and a delete.
	if got := rt.count() - before; got != 8*2 {
		t.Fatalf("Cleanup took %d round trips, want 8 batches of 2", got)
	}
	for i := range 10 {
		mustLoad(t, s, fmt.Sprintf("live%d", i))
	}
	// The cutoff is exclusive, at microsecond precision.
	if n, err := s.Cleanup(ctx, t0); n != 0 || err != nil {
		t.Fatalf("second Cleanup = %d, %v", n, err)
	}
	if n, err := s.Cleanup(ctx, t0.Add(time.Microsecond)); n != 1 || err != nil {
		t.Fatalf("Cleanup(t0+1µs) = %d, %v; want live0 only", n, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if n, err := s.Cleanup(cancelled, t0.Add(time.Hour)); n != 0 || !errors.Is(err, context.Canceled) {
		t.Fatalf("Cleanup with a cancelled ctx = %d, %v", n, err)
	}

	// Batches resume at the last atime seen: rows sharing one atime across
	// several batches are all deleted.
	for i := range 30 {
		mustCreate(t, s, fmt.Sprintf("tie%d", i), rec("x", t0.Add(-time.Minute)))
	}
	if n, err := s.Cleanup(ctx, t0); n != 30 || err != nil {
		t.Fatalf("Cleanup of 30 rows with one atime = %d, %v", n, err)
	}
}

// TestConcurrentCleanup runs Cleanup from several servers at once while
// requests touch live sessions and refresh some expired ones: no errors (no
// deadlock victims either), every expired row deleted exactly once unless a
// request refreshed it first, and those and the live rows kept.
func TestConcurrentCleanup(t *testing.T) {
	const table, expired, live, servers, refreshes = "ws_cleanup_race", 6000, 200, 4, 300
	first := newTestStore(t, table, nil)
	ctx := testCtx(t)
	fillExpired(t, first.DB(), table, expired, t0.Add(-24*time.Hour))
	for i := range live {
		mustCreate(t, first, fmt.Sprintf("live%d", i), rec("x", t0))
	}
	stores := []*Store{first}
	for range servers - 1 {
		stores = append(stores, storeOn(t, openPool(t, nil), table, WithCleanupBatch(250)))
	}
	counts := make([]int, servers)
	errs := make([]error, servers)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = s.Cleanup(ctx, t0)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 200 {
			key := fmt.Sprintf("live%d", i%live)
			if err := first.Touch(ctx, key, t0.Add(time.Duration(i)*time.Microsecond)); err != nil {
				t.Errorf("Touch(%s) during Cleanup: %v", key, err)
			}
		}
	}()
	var rescued []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range refreshes {
			key := fmt.Sprintf("expired%d", i*17%expired) // distinct keys, all over the table
			switch err := stores[1].Touch(ctx, key, t0); {
			case err == nil:
				rescued = append(rescued, key)
			case !errors.Is(err, session.ErrNotFound):
				t.Errorf("Touch(%s) during Cleanup: %v", key, err)
			}
		}
	}()
	wg.Wait()
	total := 0
	for i := range servers {
		if errs[i] != nil {
			t.Errorf("server %d: %v", i, errs[i])
		}
		total += counts[i]
	}
	t.Logf("servers deleted %v; requests refreshed %d expired sessions first", counts, len(rescued))
	if total+len(rescued) != expired {
		t.Fatalf("servers deleted %d rows and requests refreshed %d, want %d in all", total, len(rescued), expired)
	}
	var left int
	if err := first.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&left); err != nil || left != live+len(rescued) {
		t.Fatalf("%d rows left (%v), want %d live and %d refreshed", left, err, live, len(rescued))
	}
	for _, key := range rescued {
		mustLoad(t, first, key)
	}
}

// fillExpired inserts n rows with atime before at, in one statement that
// works on MySQL 8 and MariaDB (a cross join of digit tables, not a
// sequence engine or a recursive CTE).
func fillExpired(tb testing.TB, db *sql.DB, table string, n int, at time.Time) {
	tb.Helper()
	digits := "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " +
		"UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	q := "INSERT INTO `" + table + "` (session_id, atime, data, created, version) " +
		"SELECT CONCAT('expired', i), ? - INTERVAL i SECOND, 'payload', ? - INTERVAL i SECOND, 1 FROM (" +
		"SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d AS i FROM " +
		digits + " a, " + digits + " b, " + digits + " c, " + digits + " e, " + digits + " f, " + digits + " g) n WHERE i < ?"
	if n > 1_000_000 {
		tb.Fatalf("fillExpired: %d rows, at most 1000000", n)
	}
	at = at.UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := db.ExecContext(ctx, q, at, at, n)
	if err != nil {
		tb.Fatal(err)
	}
	if got, _ := res.RowsAffected(); got != int64(n) {
		tb.Fatalf("inserted %d rows, want %d", got, n)
	}
}

// TestContextCancelledMidStatement cancels a call blocked on a row lock:
// the call ends at once with the context's error, and the store keeps
// working. The driver cancels by closing the connection; the server only
// notices when it next writes to it, so the statement may still be carried
// out once the lock is free: like any error, a cancelled write leaves the
// outcome unknown, and the record is either untouched or fully updated.
func TestContextCancelledMidStatement(t *testing.T) {
	s := newTestStore(t, "ws_cancel", nil)
	s.DB().SetMaxOpenConns(1)
	ctx := testCtx(t)
	mustCreate(t, s, "k", rec("x", t0))
	var orphan int64
	if err := s.DB().QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&orphan); err != nil {
		t.Fatal(err)
	}
	admin := openPool(t, nil)
	tx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT * FROM ws_cancel WHERE session_id = 'k' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	err = s.Update(short, "k", session.Record{Data: []byte("y"), ATime: t0, Version: 1})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Update blocked on a lock past its deadline: %v, want DeadlineExceeded", err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	waitGone(t, admin, orphan)
	got := mustLoad(t, s, "k")
	switch {
	case got.Version == 1 && string(got.Data) == "x":
	case got.Version == 2 && string(got.Data) == "y":
	default:
		t.Fatalf("record after a cancelled Update: %q v%d", got.Data, got.Version)
	}
	if err := s.Update(ctx, "k", session.Record{Data: []byte("z"), ATime: t0, Version: got.Version}); err != nil {
		t.Fatalf("Update after the cancelled one: %v", err)
	}
}

// waitGone waits until the server has ended connection id.
func waitGone(t *testing.T, admin *sql.DB, id int64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		var n int
		if err := admin.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("connection %d still on the server", id)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestDroppedConnection kills the store's connection from another one.
func TestDroppedConnection(t *testing.T) {
	s := newTestStore(t, "ws_dropped", nil)
	s.DB().SetMaxOpenConns(1)
	admin := openPool(t, nil)
	ctx := testCtx(t)
	mustCreate(t, s, "k", rec("x", t0))
	connID := func() int64 {
		var id int64
		if err := s.DB().QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	t.Run("idle", func(t *testing.T) {
		// A pooled connection killed while idle: the driver sees it dead
		// before sending, and the pool retries on a new one.
		id := connID()
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, s, "k"); string(got.Data) != "x" {
			t.Fatalf("Load = %q", got.Data)
		}
		if connID() == id {
			t.Fatal("still on the killed connection")
		}
	})

	t.Run("mid-request", func(t *testing.T) {
		id := connID()
		tx, err := admin.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, "SELECT * FROM ws_dropped WHERE session_id = 'k' FOR UPDATE"); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- s.Update(ctx, "k", session.Record{Data: []byte("lost"), ATime: t0, Version: 1}) }()
		// Wait until the UPDATE is on the server, waiting for the lock.
		for {
			var n int
			err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID = ? AND INFO LIKE 'UPDATE%'", id).Scan(&n)
			if err != nil {
				t.Fatal(err)
			}
			if n == 1 {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("Update returned before it could be killed: %v", err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		if _, err := admin.ExecContext(ctx, fmt.Sprintf("KILL %d", id)); err != nil {
			t.Fatal(err)
		}
		err = <-done
		if err == nil {
			t.Fatal("Update on a killed connection succeeded")
		}
		var me *mysqldrv.MySQLError
		if !errors.As(err, &me) && !errors.Is(err, mysqldrv.ErrInvalidConn) {
			t.Fatalf("error lost its cause: %v", err)
		}
		t.Logf("killed mid-request: %v", err)
		tx.Rollback()
		// The request failed; the next one works on a new connection.
		if err := s.Update(ctx, "k", session.Record{Data: []byte("after"), ATime: t0, Version: 1}); err != nil {
			t.Fatalf("Update after the kill: %v", err)
		}
		if got := mustLoad(t, s, "k"); string(got.Data) != "after" || got.Version != 2 {
			t.Fatalf("record = %q v%d", got.Data, got.Version)
		}
	})
}

// TestRoundTrips counts exchanges with the server per operation and per
// request, on a warm single-connection pool.
func TestRoundTrips(t *testing.T) {
	var rt roundTrips
	s := newTestStore(t, "ws_roundtrips", func(c *mysqldrv.Config) { c.DialFunc = rt.dialer() })
	s.DB().SetMaxOpenConns(1)
	ctx := testCtx(t)
	measure := func(name string, want int64, op func() error) {
		t.Helper()
		before := rt.count()
		if err := op(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got := rt.count() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", name, got, want)
		}
	}
	at := t0
	measure("Create", 1, func() error { return s.Create(ctx, "k", rec("x", at)) })
	measure("Load", 1, func() error { _, err := s.Load(ctx, "k"); return err })
	measure("Update", 1, func() error { return s.Update(ctx, "k", session.Record{Data: []byte("y"), ATime: at, Version: 1}) })
	measure("Touch", 1, func() error { return s.Touch(ctx, "k", at.Add(time.Second)) })
	measure("Update conflict", 2, func() error {
		if err := s.Update(ctx, "k", session.Record{Data: []byte("z"), ATime: at, Version: 1}); !errors.Is(err, session.ErrConflict) {
			return fmt.Errorf("got %v, want ErrConflict", err)
		}
		return nil
	})
	measure("Load missing", 1, func() error {
		if _, err := s.Load(ctx, "missing"); !errors.Is(err, session.ErrNotFound) {
			return fmt.Errorf("got %v, want ErrNotFound", err)
		}
		return nil
	})
	// Binding an owner costs no round trip: it rides in Create's and
	// Update's one statement.
	owned := rec("x", at)
	owned.Owner = "owner1"
	measure("Create with an owner", 1, func() error { return s.Create(ctx, "ko", owned) })
	measure("Update to another owner", 1, func() error {
		return s.Update(ctx, "ko", session.Record{Data: []byte("y"), ATime: at, Version: 1, Owner: "owner2"})
	})
	measure("LoadOwned", 1, func() error {
		recs, err := s.LoadOwned(ctx, "owner2")
		if err == nil && len(recs) != 1 {
			err = fmt.Errorf("%d records, want 1", len(recs))
		}
		return err
	})
	measure("Delete", 1, func() error { return s.Delete(ctx, "k") })
	measure("Cleanup (nothing to do)", 1, func() error { _, err := s.Cleanup(ctx, at); return err })
	big := bytes.Repeat([]byte{1}, s.MaxDataSize())
	measure("Create with the largest data", 1, func() error { return s.Create(ctx, "big", rec(string(big), at)) })
}

// TestRetryOnlyDeadlocks checks the retry policy itself: a deadlock victim
// runs again, up to deadlockRetries times in all; any other outcome ends at
// once. (A real deadlock between a Cleanup batch and a single-row write
// cannot be produced on demand.)
func TestRetryOnlyDeadlocks(t *testing.T) {
	deadlock := &mysqldrv.MySQLError{Number: 1213, Message: "Deadlock found when trying to get lock"}
	lockWait := &mysqldrv.MySQLError{Number: 1205, Message: "Lock wait timeout exceeded"}
	for _, tc := range []struct {
		name  string
		errs  []error
		calls int
		want  error
	}{
		{"success", []error{nil}, 1, nil},
		{"deadlock then success", []error{deadlock, nil}, 2, nil},
		{"deadlock every time", []error{deadlock, deadlock, deadlock, deadlock}, deadlockRetries, deadlock},
		{"lock wait timeout", []error{lockWait, nil}, 1, lockWait},
		{"dropped connection", []error{mysqldrv.ErrInvalidConn, nil}, 1, mysqldrv.ErrInvalidConn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := 0
			err := retry(func() error { calls++; return tc.errs[calls-1] })
			if calls != tc.calls {
				t.Errorf("%d calls, want %d", calls, tc.calls)
			}
			if err != tc.want {
				t.Errorf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestHandleSettings runs the store on pools configured the other way
// round from the defaults: the prepared statements and the checks must not
// depend on them.
func TestHandleSettings(t *testing.T) {
	for name, change := range map[string]func(*mysqldrv.Config){
		"interpolateParams": func(c *mysqldrv.Config) { c.InterpolateParams = true },
		"clientFoundRows":   func(c *mysqldrv.Config) { c.ClientFoundRows = true },
		"no liveness check": func(c *mysqldrv.Config) { c.CheckConnLiveness = false },
	} {
		t.Run(name, func(t *testing.T) {
			s := newTestStore(t, "ws_settings", change)
			ctx := testCtx(t)
			mustCreate(t, s, "k", rec("x", t0))
			if err := s.Touch(ctx, "k", t0); err != nil {
				t.Fatalf("Touch to the same atime: %v", err)
			}
			if err := s.Update(ctx, "k", session.Record{Data: []byte("y"), ATime: t0, Version: 1}); err != nil {
				t.Fatal(err)
			}
			if err := s.Update(ctx, "k", session.Record{Data: []byte("z"), ATime: t0, Version: 1}); !errors.Is(err, session.ErrConflict) {
				t.Fatalf("stale Update: %v", err)
			}
			if err := s.Touch(ctx, "gone", t0); !errors.Is(err, session.ErrNotFound) {
				t.Fatalf("Touch of a missing key: %v", err)
			}
			if got := mustLoad(t, s, "k"); string(got.Data) != "y" || got.Version != 2 {
				t.Fatalf("record = %q v%d", got.Data, got.Version)
			}
			if n, err := s.Cleanup(ctx, t0.Add(time.Microsecond)); n != 1 || err != nil {
				t.Fatalf("Cleanup = %d, %v", n, err)
			}
		})
	}
}

// TestMoreClientsThanConnections: more concurrent requests than the pool
// Open makes may hold wait for a connection instead of opening more. The
// store logs in as a user of its own whose MAX_USER_CONNECTIONS is the
// pool's size, so one connection too many would fail with error 1226. All
// requests are held on a row lock until every connection is busy and every
// other request waits in the pool; then all of them must succeed.
func TestMoreClientsThanConnections(t *testing.T) {
	const conns, clients = 4, 48
	ctx := testCtx(t)
	owner := newTestStore(t, "ws_clients", nil)
	mustCreate(t, owner, "k", rec("v", t0))
	admin := openPool(t, nil)
	cfg := testConfig(t)
	user := fmt.Sprintf("wsr_%d", time.Now().UnixNano()%1e12)
	if _, err := admin.ExecContext(ctx, "CREATE USER '"+user+"'@'%' WITH MAX_USER_CONNECTIONS "+fmt.Sprint(conns)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP USER '" + user + "'@'%'") })
	if _, err := admin.ExecContext(ctx, "GRANT SELECT, INSERT, UPDATE, DELETE ON `"+cfg.DBName+"`.* TO '"+user+"'@'%'"); err != nil {
		t.Fatal(err)
	}
	cfg.User, cfg.Passwd = user, ""
	s, err := Open(ctx, cfg.FormatDSN(), WithTable("ws_clients"), WithMaxConns(conns))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustLoad(t, s, "k") // prepares the statements

	tx, err := admin.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "SELECT * FROM ws_clients WHERE session_id = 'k' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, clients)
	for i := range clients {
		go func() { errs <- s.Touch(ctx, "k", t0.Add(time.Duration(i+1)*time.Microsecond)) }()
	}
	// Wait until every connection is blocked on the lock and every other
	// client waits for a connection.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var blocked int
		if err := admin.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = ? AND INFO LIKE 'UPDATE%'", user).Scan(&blocked); err != nil {
			t.Fatal(err)
		}
		waiting := s.DB().Stats().WaitCount
		if blocked == conns && waiting >= clients-conns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections blocked, %d clients waited for a connection; want %d and %d", blocked, waiting, conns, clients-conns)
		}
		time.Sleep(5 * time.Millisecond) // polling the server's and the pool's state
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	for range clients {
		if err := <-errs; err != nil {
			t.Errorf("a client beyond the pool's size failed: %v", err)
		}
	}
	if st := s.DB().Stats(); st.MaxOpenConnections != conns || st.OpenConnections > conns {
		t.Errorf("pool stats %+v", st)
	}
}
