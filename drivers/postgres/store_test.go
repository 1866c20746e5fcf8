package postgres

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// t0 has nanoseconds and an odd zone on purpose: what the store keeps must
// be the same instant, truncated to the microsecond.
var t0 = time.Date(2041, time.March, 7, 13, 45, 12, 123456789, time.FixedZone("UTC+05:45", 5*3600+45*60))

func rec(data string, at time.Time) session.Record {
	return session.Record{Data: []byte(data), ATime: at, Created: at}
}

func mustCreate(t *testing.T, s *Store, key string, r session.Record) {
	t.Helper()
	if err := s.Create(ctxT(t), key, r); err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
}

func mustLoad(t *testing.T, s *Store, key string) session.Record {
	t.Helper()
	r, err := s.Load(ctxT(t), key)
	if err != nil {
		t.Fatalf("Load(%q): %v", key, err)
	}
	return r
}

func TestOptions(t *testing.T) {
	ctx := ctxT(t)
	db := openDB(t, testDSN(t)).DB

	for _, name := range []string{"", "1abc", "a-b", "a b", `a"b`, "a;drop table x", "sessions.x", "é", strings.Repeat("a", maxTableLen+1)} {
		if _, err := New(ctx, db, WithTable(name)); err == nil || !strings.HasPrefix(err.Error(), "postgres: new: invalid table name") {
			t.Errorf("WithTable(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "9s", "s-x", `s"`, strings.Repeat("s", 64)} {
		if _, err := New(ctx, db, WithSchema(name)); err == nil {
			t.Errorf("WithSchema(%q) accepted", name)
		}
	}
	for _, n := range []int{-1, 0, MaxCleanupBatch + 1} {
		if _, err := New(ctx, db, WithCleanupBatch(n)); err == nil {
			t.Errorf("WithCleanupBatch(%d) accepted", n)
		}
	}
	for _, o := range []Option{WithMaxConns(0), WithConnMaxLifetime(-time.Second), WithConnMaxIdleTime(-time.Second), nil} {
		if _, err := Open(ctx, testDSN(t), o); err == nil {
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
	if _, err := New(ctx, (*sql.DB)(nil)); err == nil {
		t.Error("New(nil *sql.DB) accepted")
	}
	if _, err := New(ctx, (*sqlx.DB)(nil)); err == nil {
		t.Error("New(nil *sqlx.DB) accepted")
	}
	if _, err := New(ctx, &sqlx.DB{}); err == nil {
		t.Error("New(&sqlx.DB{}) accepted")
	}

	s, err := New(ctx, db, WithSchema("App"), WithTable(strings.Repeat("T", maxTableLen)))
	if err != nil {
		t.Fatal(err)
	}
	if want := `"App"."` + strings.Repeat("T", maxTableLen) + `"`; s.Table() != want {
		t.Errorf("Table() = %s, want %s", s.Table(), want)
	}
	s, err = New(ctx, sqlx.NewDb(db, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Table() != `"sessions"` || s.batch != DefaultCleanupBatch || s.MaxDataSize() != 256<<20 || s.DB() != db {
		t.Errorf("defaults: Table() = %s, batch %d, MaxDataSize() = %d, DB() is the pool: %v", s.Table(), s.batch, s.MaxDataSize(), s.DB() == db)
	}
	if _, err := Open(ctx, "postgres://%zz"); err == nil || !strings.HasPrefix(err.Error(), "postgres: open: ") {
		t.Errorf("Open with a malformed DSN: %v", err)
	}
}

// TestConnectErrors: New and Open fail at once, with an error that reads
// "postgres: connect: ..." and wraps the cause, when no connection can be
// made; so does an operation whose connection cannot be replaced.
func TestConnectErrors(t *testing.T) {
	dsn := testDSN(t)
	ctx := ctxT(t)
	role := "wsr_" + randHex(6)
	a := admin(t)
	a.MustExec(`CREATE ROLE ` + pq.QuoteIdentifier(role) + ` NOLOGIN`)
	t.Cleanup(func() { a.MustExec(`DROP ROLE ` + pq.QuoteIdentifier(role)) })

	for _, tc := range []struct {
		name, dsn string
		check     func(error) bool
	}{
		{"unreachable", "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5", func(err error) bool {
			var oe *net.OpError
			return errors.As(err, &oe)
		}},
		{"login refused", withUser(dsn, role), func(err error) bool { return sqlState(err) == "28000" }},
		{"no such database", withDatabase(dsn, "wst_none_"+randHex(4)), func(err error) bool { return sqlState(err) == "3D000" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(ctx, tc.dsn)
			if err == nil || !strings.HasPrefix(err.Error(), "postgres: connect: ") || !tc.check(err) {
				t.Errorf("Open: %v, want a \"postgres: connect: \" error wrapping the cause", err)
			}
			db, err := sql.Open("postgres", tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = New(ctx, db)
			if err == nil || !strings.HasPrefix(err.Error(), "postgres: connect: ") || !tc.check(err) {
				t.Errorf("New: %v, want a \"postgres: connect: \" error wrapping the cause", err)
			}
			t.Logf("%s: %v", tc.name, err)
		})
	}
}

func TestOpenPool(t *testing.T) {
	ctx := ctxT(t)
	s, err := Open(ctx, testDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.DB().Stats().MaxOpenConnections; got != DefaultMaxConns {
		t.Errorf("Open's pool holds up to %d connections, want DefaultMaxConns (%d)", got, DefaultMaxConns)
	}
	s2, err := Open(ctx, testDSN(t), WithMaxConns(3), WithConnMaxLifetime(time.Minute), WithConnMaxIdleTime(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if got := s2.DB().Stats().MaxOpenConnections; got != 3 {
		t.Errorf("WithMaxConns(3): pool holds up to %d", got)
	}
}

func TestOpenOwnsPool(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	ctx := ctxT(t)
	s, err := Open(ctx, dsn, WithSchema(schema), WithTable("owned"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, s, "k", rec("v", t0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.PingContext(ctx); err == nil {
		t.Error("pool still open after Close of a store made by Open")
	}
	for name, err := range map[string]error{
		"Load":        func() error { _, err := s.Load(ctx, "k"); return err }(),
		"LoadOwned":   func() error { _, err := s.LoadOwned(ctx, "o"); return err }(),
		"Create":      s.Create(ctx, "k2", rec("", t0)),
		"Update":      s.Update(ctx, "k", rec("", t0)),
		"Touch":       s.Touch(ctx, "k", t0),
		"Delete":      s.Delete(ctx, "k"),
		"Cleanup":     func() error { _, err := s.Cleanup(ctx, t0); return err }(),
		"CreateTable": s.CreateTable(ctx),
	} {
		if !errors.Is(err, session.ErrClosed) || !strings.HasPrefix(err.Error(), "postgres: ") {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestNewSharesPool(t *testing.T) {
	dsn := testDSN(t)
	db := openDB(t, dsn)
	s := newStore(t, db, WithSchema(newSchema(t)))
	mustCreate(t, s, "k", rec("v", t0))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.PingContext(ctxT(t)); err != nil {
		t.Errorf("Close of a store made by New closed the application's pool: %v", err)
	}
}

func TestOperations(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	ctx := ctxT(t)

	if _, err := s.Load(ctx, "missing"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load(missing) = %v, want ErrNotFound", err)
	}
	r := session.Record{Data: []byte{0, 1, 2, 0xff, 0xfe, 0}, ATime: t0, Created: t0.Add(-time.Hour), Version: 42}
	mustCreate(t, s, "k", r)
	got := mustLoad(t, s, "k")
	if !bytes.Equal(got.Data, r.Data) || got.Version != 1 || !got.ATime.Equal(t0.Truncate(time.Microsecond)) ||
		!got.Created.Equal(t0.Add(-time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("Load after Create = %+v", got)
	}

	err := s.Create(ctx, "k", rec("other", t0))
	if !errors.Is(err, session.ErrExists) {
		t.Fatalf("second Create = %v, want ErrExists", err)
	}
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "23505" {
		t.Errorf("ErrExists does not wrap the unique violation: %v", err)
	}

	t1 := t0.Add(time.Minute)
	if err := s.Update(ctx, "k", session.Record{Data: []byte("v2"), ATime: t1, Created: t1, Version: 1}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	got = mustLoad(t, s, "k")
	if string(got.Data) != "v2" || got.Version != 2 || !got.ATime.Equal(t1.Truncate(time.Microsecond)) ||
		!got.Created.Equal(t0.Add(-time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("Load after Update = %+v (Created must not change)", got)
	}
	for _, v := range []uint64{0, 1, 3, math.MaxInt64, math.MaxInt64 + 1, math.MaxUint64} {
		err := s.Update(ctx, "k", session.Record{Data: []byte("stale"), ATime: t1, Version: v})
		if !errors.Is(err, session.ErrConflict) {
			t.Errorf("Update with version %d = %v, want ErrConflict", v, err)
		}
		if err := s.Update(ctx, "nokey", session.Record{Data: []byte("x"), ATime: t1, Version: v}); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Update(missing) with version %d = %v, want ErrNotFound", v, err)
		}
	}
	if _, err := s.Load(ctx, "nokey"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Update created a record: %v", err)
	}

	t2 := t1.Add(time.Minute)
	if err := s.Touch(ctx, "k", t2); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	got = mustLoad(t, s, "k")
	if string(got.Data) != "v2" || got.Version != 2 || !got.ATime.Equal(t2.Truncate(time.Microsecond)) {
		t.Fatalf("Load after Touch = %+v", got)
	}
	if err := s.Touch(ctx, "nokey", t2); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Touch(missing) = %v, want ErrNotFound", err)
	}

	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatalf("Delete(missing): %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after Delete = %v", err)
	}
}

func TestInvalidKeysNeverReachTheServer(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	ctx := ctxT(t)
	for _, key := range []string{"", "a b", "a'b", "k;DROP TABLE x", "ü", "a/b", "a.b", strings.Repeat("k", session.MaxKeyLen+1)} {
		errs := map[string]error{
			"Load":   func() error { _, err := s.Load(ctx, key); return err }(),
			"Create": s.Create(ctx, key, rec("x", t0)),
			"Update": s.Update(ctx, key, rec("x", t0)),
			"Touch":  s.Touch(ctx, key, t0),
			"Delete": s.Delete(ctx, key),
		}
		for op, err := range errs {
			if !errors.Is(err, session.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want ErrInvalidKey", op, key, err)
			}
		}
	}
	var n int
	if err := admin(t).Get(&n, `SELECT count(*) FROM `+s.Table()); err != nil || n != 0 {
		t.Fatalf("rows after invalid keys: %d, %v", n, err)
	}
	long := strings.Repeat("K", session.MaxKeyLen)
	mustCreate(t, s, long, rec("x", t0))
	if got := mustLoad(t, s, long); string(got.Data) != "x" {
		t.Fatalf("longest key: %+v", got)
	}
	// Keys are case-sensitive ("C" collation, no folding).
	if _, err := s.Load(ctx, strings.ToLower(long)); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("lower-case key found the upper-case record: %v", err)
	}
}

func TestDataIsByteExactAndNeverAliased(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	ctx := ctxT(t)

	// nil Data: lib/pq would send NULL; the store stores it as empty.
	mustCreate(t, s, "nil", session.Record{ATime: t0, Created: t0})
	if got := mustLoad(t, s, "nil"); got.Data == nil || len(got.Data) != 0 {
		t.Fatalf("nil Data came back as %#v", got.Data)
	}
	if err := s.Update(ctx, "nil", session.Record{ATime: t0, Version: 1}); err != nil {
		t.Fatalf("Update with nil Data: %v", err)
	}

	all := make([]byte, 256*4)
	for i := range all {
		all[i] = byte(i)
	}
	mustCreate(t, s, "bin", session.Record{Data: all, ATime: t0, Created: t0})
	all[0] = 'X' // the store kept no alias of the caller's slice
	got := mustLoad(t, s, "bin")
	if got.Data[0] != 0 || len(got.Data) != len(all) || !bytes.Equal(got.Data[1:], all[1:]) {
		t.Fatal("binary data not stored byte-exact")
	}
	got.Data[1] = 'Y'
	if again := mustLoad(t, s, "bin"); again.Data[1] != 1 {
		t.Fatal("Load returned memory the store keeps")
	}
}

func TestTooLargeWritesNothing(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	s.maxData = 1000 // MaxDataSize itself is 256 MiB: too big to allocate in a test
	ctx := ctxT(t)
	big := bytes.Repeat([]byte("x"), 1001)
	if err := s.Create(ctx, "k", session.Record{Data: big, ATime: t0, Created: t0}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("Create too large = %v", err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("too large Create stored something: %v", err)
	}
	mustCreate(t, s, "k", session.Record{Data: big[:1000], ATime: t0, Created: t0})
	if err := s.Update(ctx, "k", session.Record{Data: big, ATime: t0, Version: 1}); !errors.Is(err, session.ErrTooLarge) {
		t.Fatalf("Update too large = %v", err)
	}
	if got := mustLoad(t, s, "k"); got.Version != 1 || len(got.Data) != 1000 {
		t.Fatalf("too large Update changed the record: version %d, %d bytes", got.Version, len(got.Data))
	}
}

// TestTimes checks the handling of time without the conformance suite:
// stored times are the instant given, truncated (never rounded up) to the
// microsecond, whatever the zone of the value or of the connection.
func TestTimes(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	for _, tz := range []string{"UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "America/St_Johns"} {
		t.Run(tz, func(t *testing.T) {
			db := openDB(t, withParam(dsn, "timezone", tz))
			var shown string
			if err := db.Get(&shown, "SHOW TimeZone"); err != nil || shown != tz {
				t.Fatalf("connection TimeZone = %q (%v), want %q", shown, err, tz)
			}
			s := newStore(t, db, WithSchema(schema), WithTable("times_"+strings.ToLower(strings.ReplaceAll(tz, "/", "_"))))
			ctx := ctxT(t)
			cases := []time.Time{
				t0,
				time.Date(2041, 3, 7, 23, 59, 59, 999999999, time.FixedZone("-11", -11*3600)), // rounding would cross a day
				time.Date(1999, 12, 31, 23, 59, 59, 999999500, time.UTC),                      // the server would round .9999995 up
				time.Date(2024, 3, 10, 2, 30, 0, 1, time.FixedZone("odd", -(3*3600+30*60))),
				{}, // the zero time
			}
			for i, at := range cases {
				key := fmt.Sprintf("k%d", i)
				mustCreate(t, s, key, session.Record{ATime: at, Created: at.Add(-time.Nanosecond)})
				got := mustLoad(t, s, key)
				want := at.Truncate(time.Microsecond)
				if !got.ATime.Equal(want) || got.ATime.After(at) {
					t.Errorf("%v: ATime came back %v, want %v", at, got.ATime, want)
				}
				if wantC := at.Add(-time.Nanosecond).Truncate(time.Microsecond); !got.Created.Equal(wantC) {
					t.Errorf("%v: Created came back %v, want %v", at, got.Created, wantC)
				}
			}
			// Cleanup compares with the cutoff given, at the same precision:
			// a cutoff equal to an atime keeps it, one a microsecond later
			// deletes it.
			if n, err := s.Cleanup(ctx, t0); err != nil || n != 3 { // the zero time, 1999 and 2024
				t.Fatalf("Cleanup(t0) = %d, %v; want 3", n, err)
			}
			if _, err := s.Load(ctx, "k0"); err != nil {
				t.Fatalf("Cleanup(t0) deleted the record with atime t0: %v", err)
			}
			if n, err := s.Cleanup(ctx, t0.Add(time.Microsecond)); err != nil || n != 1 {
				t.Fatalf("Cleanup(t0+1µs) = %d, %v; want 1", n, err)
			}
		})
	}
}

// TestUpdateRaces forces each interleaving of an Update with a concurrent
// writer: the other transaction locks the row first, the Update waits on
// it, and then the other side commits a change, a delete, or nothing. The
// Update must answer from the row as it is after the wait.
func TestUpdateRaces(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	for _, tc := range []struct {
		name   string
		other  string // run by the other transaction while it holds the row
		commit bool
		want   error
		data   string // what the row holds afterwards ("" = gone)
		ver    uint64
	}{
		{"OtherRollsBack", `UPDATE %s SET version = version + 1 WHERE session_id = 'k'`, false, nil, "mine", 2},
		{"OtherUpdates", `UPDATE %s SET data = 'theirs', version = version + 1 WHERE session_id = 'k'`, true, session.ErrConflict, "theirs", 2},
		{"OtherDeletes", `DELETE FROM %s WHERE session_id = 'k'`, true, session.ErrNotFound, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxT(t)
			_ = s.Delete(ctx, "k")
			mustCreate(t, s, "k", rec("orig", t0))
			tx := admin(t).MustBeginTx(ctx, nil)
			defer func() { _ = tx.Rollback() }()
			var holder int
			if err := tx.GetContext(ctx, &holder, `SELECT pg_backend_pid() FROM `+s.Table()+` WHERE session_id = 'k' FOR UPDATE`); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				done <- s.Update(ctx, "k", session.Record{Data: []byte("mine"), ATime: t0, Version: 1})
			}()
			waitBlocked(t, holder)
			if _, err := tx.ExecContext(ctx, fmt.Sprintf(tc.other, s.Table())); err != nil {
				t.Fatal(err)
			}
			if tc.commit {
				if err := tx.Commit(); err != nil {
					t.Fatal(err)
				}
			} else if err := tx.Rollback(); err != nil {
				t.Fatal(err)
			}
			if err := <-done; !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("Update = %v, want %v", err, tc.want)
			}
			got, err := s.Load(ctx, "k")
			if tc.data == "" {
				if !errors.Is(err, session.ErrNotFound) {
					t.Fatalf("after the race: %+v, %v; want no record", got, err)
				}
				return
			}
			if err != nil || string(got.Data) != tc.data || got.Version != tc.ver {
				t.Fatalf("after the race: %q v%d, %v; want %q v%d", got.Data, got.Version, err, tc.data, tc.ver)
			}
		})
	}
}

// waitBlocked waits until some backend is blocked on a lock held by the
// backend holder: that is, until the goroutine under test has reached the
// server and is waiting there.
func waitBlocked(t *testing.T, holder int) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var pid int
		err := admin(t).Get(&pid, `SELECT pid FROM pg_stat_activity WHERE $1 = ANY (pg_blocking_pids(pid)) LIMIT 1`, holder)
		if err == nil {
			return pid
		}
		if !errors.Is(err, sql.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no backend blocked on the test's lock")
		}
		time.Sleep(5 * time.Millisecond) // polling the server's state, not waiting out a timer
	}
}

func TestConcurrentCreateAndUpdate(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	a := newStore(t, openDB(t, dsn), WithSchema(schema))
	b := newStore(t, openDB(t, dsn), WithSchema(schema))
	ctx := ctxT(t)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		st := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- st.Create(ctx, "one", rec(fmt.Sprint(i), t0))
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, session.ErrExists):
			t.Errorf("Create: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent Creates succeeded, want 1", ok)
	}

	errs = make(chan error, n)
	for i := range n {
		st := []*Store{a, b}[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- st.Update(ctx, "one", session.Record{Data: []byte(fmt.Sprint("u", i)), ATime: t0, Version: 1})
		}()
	}
	wg.Wait()
	close(errs)
	ok = 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, session.ErrConflict):
			t.Errorf("Update: %v", err)
		}
	}
	if got := mustLoad(t, a, "one"); ok != 1 || got.Version != 2 {
		t.Fatalf("%d concurrent Updates succeeded (version now %d), want exactly 1", ok, got.Version)
	}
}

func TestCreateTable(t *testing.T) {
	dsn := testDSN(t)
	schema := newSchema(t)
	ctx := ctxT(t)

	// Many servers starting at once, each with its own pool.
	const servers = 8
	var wg sync.WaitGroup
	errs := make(chan error, servers)
	for range servers {
		s, err := New(ctxT(t), openDB(t, dsn), WithSchema(schema), WithTable("boot"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		wg.Add(1)
		go func() { defer wg.Done(); errs <- s.CreateTable(ctx) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent CreateTable: %v", err)
		}
	}
	var idx []string
	if err := admin(t).Select(&idx, `SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = 'boot' ORDER BY indexname`, schema); err != nil {
		t.Fatal(err)
	}
	if len(idx) != 3 || !strings.Contains(idx[0], "(atime)") || !strings.Contains(idx[1], "(owner) WHERE (owner <> ''::text)") || !strings.Contains(idx[2], "(session_id)") {
		t.Fatalf("indexes = %q, want the primary key, one on atime and a partial one on owner", idx)
	}

	// web.py's table: CreateTable reports it instead of leaving it to the
	// first request.
	if _, err := admin(t).Exec(`CREATE TABLE ` + pq.QuoteIdentifier(schema) + `.webpy (session_id char(128) UNIQUE NOT NULL, atime timestamp NOT NULL default current_timestamp, data text)`); err != nil {
		t.Fatal(err)
	}
	s, err := New(ctxT(t), openDB(t, dsn), WithSchema(schema), WithTable("webpy"))
	if err != nil {
		t.Fatal(err)
	}
	err = s.CreateTable(ctx)
	if err == nil || !strings.Contains(err.Error(), "atime is timestamp without time zone") || !strings.Contains(err.Error(), "no column version") {
		t.Fatalf("CreateTable over web.py's table = %v", err)
	}

	// A missing schema is the server's error, kept.
	s, err = New(ctxT(t), openDB(t, dsn), WithSchema("wst_missing_"+randHex(4)))
	if err != nil {
		t.Fatal(err)
	}
	var pe *pq.Error
	if err := s.CreateTable(ctx); !errors.As(err, &pe) || pe.Code != "3F000" {
		t.Fatalf("CreateTable in a missing schema = %v, want invalid_schema_name", err)
	}
}

// TestStatementsBeforeTable: New does no I/O, so a store made before its
// table fails cleanly until CreateTable, and then works (the failed
// preparation is not cached).
func TestStatementsBeforeTable(t *testing.T) {
	dsn := testDSN(t)
	s, err := New(ctxT(t), openDB(t, dsn), WithSchema(newSchema(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := ctxT(t)
	_, err = s.Load(ctx, "k")
	var pe *pq.Error
	if !errors.As(err, &pe) || pe.Code != "42P01" {
		t.Fatalf("Load before CreateTable = %v, want undefined_table", err)
	}
	if err := s.CreateTable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("Load after CreateTable = %v", err)
	}
}

func TestContext(t *testing.T) {
	dsn := testDSN(t)
	s := newStore(t, openDB(t, dsn), WithSchema(newSchema(t)))
	mustCreate(t, s, "k", rec("v", t0))

	// Already cancelled: every method ends with the context's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for name, err := range map[string]error{
		"Load":    func() error { _, err := s.Load(ctx, "k"); return err }(),
		"Create":  s.Create(ctx, "k2", rec("", t0)),
		"Update":  s.Update(ctx, "k", session.Record{ATime: t0, Version: 1}),
		"Touch":   s.Touch(ctx, "k", t0),
		"Delete":  s.Delete(ctx, "k"),
		"Cleanup": func() error { _, err := s.Cleanup(ctx, t0); return err }(),
	} {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v", name, err)
		}
	}
	if got := mustLoad(t, s, "k"); got.Version != 1 {
		t.Fatal("a cancelled call changed the record")
	}

	// Cancelled while the server works on it (waiting for a lock): lib/pq
	// cancels the query on the server and reports the server's error; the
	// store's error satisfies both errors.Is(ctx.Err()) and errors.As.
	tx := admin(t).MustBegin()
	defer func() { _ = tx.Rollback() }()
	var holder int
	if err := tx.Get(&holder, `SELECT pg_backend_pid() FROM `+s.Table()+` WHERE session_id = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Update(ctx, "k", session.Record{Data: []byte("late"), ATime: t0, Version: 1}) }()
	waitBlocked(t, holder)
	cancel()
	err := <-done
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update cancelled mid-query = %v, want context.Canceled", err)
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code != "57014" {
		t.Errorf("cause = %v, want query_canceled", pe)
	}
	t.Logf("cancelled mid-query: %v", err)
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := mustLoad(t, s, "k"); got.Version != 1 || string(got.Data) != "v" {
		t.Fatalf("the cancelled Update was applied: %+v", got)
	}
	// The pool is fine afterwards.
	if err := s.Update(ctxT(t), "k", session.Record{Data: []byte("w"), ATime: t0, Version: 1}); err != nil {
		t.Fatalf("Update after a cancelled one: %v", err)
	}
}

// TestMoreClientsThanConnections: more concurrent requests than the pool
// Open makes may hold wait for a connection instead of opening more. The
// store logs in as a role of its own whose server-side connection limit
// is the pool's size, so one connection too many would fail with "too
// many connections for role" (53300). All requests are held on a row
// lock until every connection is busy and every other request waits in
// the pool; then all of them must succeed.
func TestMoreClientsThanConnections(t *testing.T) {
	const conns, clients = 4, 48
	dsn := testDSN(t)
	schema := newSchema(t)
	ctx := ctxT(t)
	owner := newStore(t, openDB(t, dsn), WithSchema(schema))
	mustCreate(t, owner, "k", rec("v", t0))
	role := "wsr_" + randHex(6)
	qrole := pq.QuoteIdentifier(role)
	a := admin(t)
	a.MustExec(`CREATE ROLE ` + qrole + ` LOGIN CONNECTION LIMIT ` + fmt.Sprint(conns))
	t.Cleanup(func() {
		a.MustExec(`DROP OWNED BY ` + qrole)
		a.MustExec(`DROP ROLE ` + qrole)
	})
	a.MustExec(`GRANT USAGE ON SCHEMA ` + pq.QuoteIdentifier(schema) + ` TO ` + qrole)
	a.MustExec(`GRANT SELECT, INSERT, UPDATE, DELETE ON ` + owner.Table() + ` TO ` + qrole)

	s, err := Open(ctx, withUser(dsn, role), WithSchema(schema), WithMaxConns(conns))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tx := a.MustBeginTx(ctx, nil)
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT FROM `+s.Table()+` WHERE session_id = 'k' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, clients)
	for i := range clients {
		go func() { errs <- s.Touch(ctx, "k", t0.Add(time.Duration(i)*time.Microsecond)) }()
	}
	// Wait until every connection is blocked on the lock and every other
	// client waits for a connection.
	deadline := time.Now().Add(20 * time.Second)
	for {
		var blocked int
		if err := a.GetContext(ctx, &blocked, `SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND wait_event_type = 'Lock'`, role); err != nil {
			t.Fatal(err)
		}
		waiting := s.DB().Stats().WaitCount
		if blocked == conns && waiting >= clients-conns {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d backends blocked, %d clients waited for a connection; want %d and %d", blocked, waiting, conns, clients-conns)
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
