package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// tripDialer dials real TCP connections to the server and counts network
// round trips on them: a round trip starts whenever the client writes after
// it has read (or for its first write). Several messages the driver
// pipelines before it waits for an answer (Bind, Execute, Sync) count as
// one; a Parse/Describe exchange followed by a Bind/Execute exchange
// counts as two. Nothing is simulated: the bytes go to PostgreSQL.
type tripDialer struct {
	d     net.Dialer
	trips atomic.Int64
}

func (d *tripDialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

func (d *tripDialer) DialTimeout(network, address string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return d.DialContext(ctx, network, address)
}

func (d *tripDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := d.d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	tc := &tripConn{Conn: c, d: d}
	tc.readSinceWrite.Store(true)
	return tc, nil
}

type tripConn struct {
	net.Conn
	d              *tripDialer
	readSinceWrite atomic.Bool
}

func (c *tripConn) Write(b []byte) (int, error) {
	if c.readSinceWrite.Swap(false) {
		c.d.trips.Add(1)
	}
	return c.Conn.Write(b)
}

func (c *tripConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.readSinceWrite.Store(true)
	}
	return n, err
}

// countingDB opens a one-connection pool on dsn whose round trips d counts.
func countingDB(tb testing.TB, dsn string) (*sqlx.DB, *tripDialer) {
	tb.Helper()
	connector, err := pq.NewConnector(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	d := &tripDialer{}
	connector.Dialer(d)
	db := sql.OpenDB(connector)
	// One connection, so every statement is prepared on it once and the
	// counts below are those of a warm pool.
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	tb.Cleanup(func() { _ = db.Close() })
	return sqlx.NewDb(db, "postgres"), d
}

// trips returns how many round trips fn made.
func (d *tripDialer) count(fn func()) int64 {
	before := d.trips.Load()
	fn()
	return d.trips.Load() - before
}

// TestRoundTrips checks that each store operation is one round trip on a
// warm pool, and counts the round trips of whole requests through a
// session.Manager: read-only, counter (read and write), new session.
func TestRoundTrips(t *testing.T) {
	dsn := testDSN(t)
	db, d := countingDB(t, dsn)
	s := newStore(t, db, WithSchema(newSchema(t)))
	ctx := ctxT(t)

	// The reason for prepared statements: lib/pq runs a parameterised
	// query that is not prepared as Parse/Describe, then Bind/Execute.
	var one int
	if n := d.count(func() {
		if err := db.GetContext(ctx, &one, `SELECT $1::int`, 1); err != nil {
			t.Fatal(err)
		}
	}); n != 2 {
		t.Errorf("an unprepared parameterised query took %d round trips; lib/pq has changed, revisit the notes", n)
	}

	ops := []struct {
		name string
		fn   func() error
	}{
		{"Create", func() error { return s.Create(ctx, "k", rec("v", t0)) }},
		{"Load", func() error { _, err := s.Load(ctx, "k"); return err }},
		{"Update", func() error {
			r, err := s.Load(ctx, "k")
			if err != nil {
				return err
			}
			return s.Update(ctx, "k", session.Record{Data: []byte("w"), ATime: t0, Version: r.Version})
		}},
		{"Touch", func() error { return s.Touch(ctx, "k", t0) }},
		{"Delete", func() error { return s.Delete(ctx, "k") }},
		{"Cleanup", func() error { _, err := s.Cleanup(ctx, t0.Add(-time.Hour)); return err }},
	}
	// Warm up: the first call of each statement also prepares it.
	for _, op := range ops {
		if err := op.fn(); err != nil {
			t.Fatalf("%s: %v", op.name, err)
		}
	}
	want := map[string]int64{"Create": 1, "Load": 1, "Update": 2 /* Load + Update */, "Touch": 1, "Delete": 1, "Cleanup": 1}
	for _, op := range ops {
		var err error
		if n := d.count(func() { err = op.fn() }); err != nil || n != want[op.name] {
			t.Errorf("%s: %d round trips (%v), want %d", op.name, n, err, want[op.name])
		}
	}

	// Binding an owner costs no round trip: it rides in Create's and
	// Update's one statement. LoadOwned is one more (after its prepare).
	owned := rec("v", t0)
	owned.Owner = "owner1"
	if _, err := s.LoadOwned(ctx, "owner1"); err != nil { // prepares it
		t.Fatal(err)
	}
	for _, op := range []struct {
		name string
		fn   func() error
	}{
		{"Create with an owner", func() error { return s.Create(ctx, "ko", owned) }},
		{"Update to another owner", func() error {
			return s.Update(ctx, "ko", session.Record{Data: []byte("w"), ATime: t0, Version: 1, Owner: "owner2"})
		}},
		{"LoadOwned", func() error {
			recs, err := s.LoadOwned(ctx, "owner2")
			if err == nil && len(recs) != 1 {
				err = fmt.Errorf("%d records, want 1", len(recs))
			}
			return err
		}},
	} {
		var err error
		if n := d.count(func() { err = op.fn() }); err != nil || n != 1 {
			t.Errorf("%s: %d round trips (%v), want 1", op.name, n, err)
		}
	}

	// Cleanup of n rows with batch b: ceil((n+1)/b) statements, one round trip each.
	sb := newStore(t, db, WithSchema(s.schema), WithTable("batched"), WithCleanupBatch(10))
	for i := range 25 {
		mustCreate(t, sb, fmt.Sprintf("old%d", i), rec("", t0))
	}
	var deleted int
	var err error
	n := d.count(func() { deleted, err = sb.Cleanup(ctx, t0.Add(time.Second)) })
	// +1 round trip: the first Cleanup of this store prepares its statement.
	if err != nil || deleted != 25 || n != 3+1 {
		t.Errorf("Cleanup of 25 rows in batches of 10: deleted %d (%v) in %d round trips, want 25 in 3 (+1 prepare)", deleted, err, n)
	}

	// Whole requests through the manager.
	rt := requestTrips(t, s, d)
	for _, c := range []struct {
		name string
		want int64
	}{{"new", 1}, {"counter", 2}, {"read-only", 1}, {"read-only, touch due", 2}, {"no session use", 0}} {
		if rt[c.name] != c.want {
			t.Errorf("request %q: %d round trips, want %d", c.name, rt[c.name], c.want)
		}
	}
	t.Logf("round trips per request: %v", rt)
}

// requestClient starts a session.Manager over s behind an httptest
// server, with a fake clock, and returns a client for it. get sends a
// request with the session cookie of the earlier ones (keep) or without
// one (a new visitor). The handlers: /count increments a counter in the
// session, /read reads it, /static ignores the session.
func requestClient(tb testing.TB, s *Store) (get func(path string, keep bool), clk *conformance.FakeClock) {
	tb.Helper()
	clk = conformance.NewFakeClock()
	m, err := session.New(s, session.WithClock(clk.Now), session.WithCleanupInterval(0))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = m.Close() })
	mux := http.NewServeMux()
	mux.HandleFunc("/count", func(w http.ResponseWriter, r *http.Request) {
		sess := session.FromContext(r.Context())
		n, _ := session.Get[int](sess, "count")
		if err := sess.Set("count", n+1); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n+1)
	})
	mux.HandleFunc("/read", func(w http.ResponseWriter, r *http.Request) {
		n, err := session.Get[int](session.FromContext(r.Context()), "count")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("/static", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "static") })
	srv := httptest.NewServer(m.Middleware(mux))
	tb.Cleanup(srv.Close)
	client := srv.Client()

	var cookie *http.Cookie
	get = func(path string, keep bool) {
		req, err := http.NewRequest("GET", srv.URL+path, nil)
		if err != nil {
			tb.Fatal(err)
		}
		if keep && cookie != nil {
			req.AddCookie(cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			tb.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != 200 {
			tb.Fatalf("GET %s: %s %s", path, resp.Status, body)
		}
		for _, c := range resp.Cookies() {
			if c.Name == session.DefaultCookieName && keep {
				cookie = c
			}
		}
	}
	return get, clk
}

// requestTrips counts the round trips of typical requests through a
// session.Manager over s, on the warm connection behind d.
func requestTrips(tb testing.TB, s *Store, d *tripDialer) map[string]int64 {
	tb.Helper()
	get, clk := requestClient(tb, s)
	// Warm up every statement the requests use.
	get("/count", true)
	get("/count", true)
	clk.Advance(2 * session.DefaultTouchInterval)
	get("/read", true)

	out := map[string]int64{}
	measure := func(name, path string, keep bool) {
		out[name] = d.count(func() { get(path, keep) })
	}
	measure("new", "/count", false)
	measure("counter", "/count", true)
	measure("read-only", "/read", true)
	clk.Advance(2 * session.DefaultTouchInterval)
	measure("read-only, touch due", "/read", true)
	measure("no session use", "/static", true)
	return out
}
