package bench

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// BenchmarkSessions runs every scenario on every backend, named
// backend=<library>-<store>/scenario=<name> so that benchstat can compare
// them. Each backend is opened once per run (one store, one pool, one
// scratch schema or database) and shared by its scenarios; each scenario
// makes its own sessions. Metrics beyond Go's: storecalls/op (split into
// storereads/op and storewrites/op) and, for the SQL stores, roundtrips/op
// counted on the connections' sockets.
func BenchmarkSessions(b *testing.B) {
	for _, be := range backends {
		b.Run("backend="+be.name, func(b *testing.B) {
			if be.db != "" {
				requireDB(b, be.db)
			}
			in := be.open(b, openConfig{})
			for _, sc := range scenarios {
				if !sc.applies(be) {
					continue
				}
				b.Run("scenario="+sc.name, func(b *testing.B) { sc.run(benchEnv(b), in) })
			}
		})
	}
}

// TestScenarios runs every scenario's code, with its checks, on every
// backend for a few iterations: the benchmarks' harness must work, and
// every library must pass the checks that keep the comparison honest.
func TestScenarios(t *testing.T) {
	for _, be := range backends {
		t.Run("backend="+be.name, func(t *testing.T) {
			if be.db != "" {
				requireDB(t, be.db)
			}
			in := be.open(t, openConfig{})
			for _, sc := range scenarios {
				if !sc.applies(be) && sc.name != "UntouchedHTTP" {
					continue
				}
				t.Run("scenario="+sc.name, func(t *testing.T) { sc.run(testEnv(t, 20), in) })
			}
		})
	}
}

// serve runs one request through h with cookie (name=value, or none).
func serve(h http.Handler, cookie string) *respWriter {
	w := newRespWriter()
	h.ServeHTTP(w, newRequest(cookie))
	return w
}

// TestStoreCalls pins the store calls of each kind of request on each of
// our drivers, with a fake clock: above all, a read-only request within
// the touch interval writes nothing, on every driver.
func TestStoreCalls(t *testing.T) {
	for _, be := range backends {
		if !be.ours {
			continue
		}
		t.Run("backend="+be.name, func(t *testing.T) {
			if be.db != "" {
				requireDB(t, be.db)
			}
			clk := conformance.NewFakeClock()
			in := be.open(t, openConfig{opts: []session.Option{session.WithClock(clk.Now)}})
			l := in.lib
			read, count, untouched, create := l.wrap(readHandler(l)), l.wrap(counterHandler(l)), l.wrap(untouchedHandler), l.wrap(newHandler(l))

			var cookie string
			step := func(name string, h http.Handler, body string, want callCount) {
				t.Helper()
				before := in.calls.snapshot()
				w := serve(h, cookie)
				if err := w.check(body); err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if got := in.calls.snapshot().sub(before); got != want {
					t.Errorf("%s: %v, want %v", name, got, want)
				}
				if cookie == "" {
					c, err := w.sessionCookie()
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					cookie = c
				}
			}
			step("New", create, "1", callCount{writes: 1})
			for i := range 3 {
				step(fmt.Sprintf("ReadOnly #%d, within the touch interval", i+1), read, "1", callCount{reads: 1})
				clk.Advance(session.DefaultTouchInterval / 4)
			}
			step("Untouched", untouched, "ok", callCount{})
			step("Counter", count, "2", callCount{reads: 1, writes: 1})
			// The Counter's write restarted the interval.
			clk.Advance(session.DefaultTouchInterval - time.Microsecond)
			step("ReadOnly, just within the touch interval", read, "2", callCount{reads: 1})
			clk.Advance(time.Microsecond)
			step("ReadOnly, touch due", read, "2", callCount{reads: 1, writes: 1, touches: 1})
			step("ReadOnly, right after the touch", read, "2", callCount{reads: 1})
			clk.Advance(session.DefaultTouchInterval - time.Microsecond)
			step("ReadOnly, just within the touch interval after the touch", read, "2", callCount{reads: 1})
		})
	}
}

// TestRoundTrips pins the network round trips per request of the SQL
// backends, on a warm one-connection pool: ours need one for ReadOnly and
// New and two for Counter (prepared statements, reused per connection);
// scs's SQL stores need twice as many, because database/sql prepares and
// executes each parameterised query separately when the driver cannot run
// it at once (lib/pq: Parse/Describe, then Bind/Execute; go-sql-driver
// without interpolateParams: COM_STMT_PREPARE, then COM_STMT_EXECUTE).
// On Redis both need one per store call (scripts are loaded once), except
// for the Loads our client cache serves.
func TestRoundTrips(t *testing.T) {
	want := map[string]map[string]int64{
		"ours-postgres": {"New": 1, "ReadOnly": 1, "Counter": 2, "Untouched": 0, "ReadOnly, touch due": 2},
		"ours-mysql":    {"New": 1, "ReadOnly": 1, "Counter": 2, "Untouched": 0, "ReadOnly, touch due": 2},
		"ours-redis":    {"New": 1, "ReadOnly": 1, "Counter": 2, "Untouched": 0, "ReadOnly, touch due": 2},
		// Loads of what it read or wrote before come from its client cache.
		"ours-redis-cache": {"New": 1, "ReadOnly": 0, "Counter": 1, "Untouched": 0, "ReadOnly, touch due": 1},
		// scs loads the session before the handler runs, used or not.
		"scs-postgres": {"New": 2, "ReadOnly": 2, "Counter": 4, "Untouched": 2},
		"scs-mysql":    {"New": 2, "ReadOnly": 2, "Counter": 4, "Untouched": 2},
		"scs-redis":    {"New": 1, "ReadOnly": 1, "Counter": 2, "Untouched": 1},
	}
	for _, name := range []string{"ours-postgres", "scs-postgres", "ours-mysql", "scs-mysql", "ours-redis", "ours-redis-cache", "scs-redis"} {
		be := backendNamed(name)
		t.Run("backend="+name, func(t *testing.T) {
			if be.db != "" {
				requireDB(t, be.db) // the Redis backends check their server in open
			}
			clk := conformance.NewFakeClock()
			in := be.open(t, openConfig{maxConns: 1, opts: []session.Option{session.WithClock(clk.Now)}})
			l := in.lib
			read, count, untouched, create := l.wrap(readHandler(l)), l.wrap(counterHandler(l)), l.wrap(untouchedHandler), l.wrap(newHandler(l))
			cookieOf := func(w *respWriter) string {
				c, err := w.sessionCookie()
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			cookie := cookieOf(serve(create, ""))

			// Warm up: every statement once on the pool's one connection,
			// which prepares ours (scs prepares again on every query).
			serve(count, cookie)
			serve(read, cookie)
			if be.ours {
				clk.Advance(session.DefaultTouchInterval)
				serve(read, cookie)
			}

			got := map[string]int64{}
			measure := func(kind string, h http.Handler, cookie, body string) {
				if in.settle != nil {
					in.settle()
				}
				before := in.trips.load()
				w := serve(h, cookie)
				got[kind] = in.trips.load() - before
				if err := w.check(body); err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
			}
			measure("New", create, "", "1")
			measure("ReadOnly", read, cookie, "2")
			measure("Counter", count, cookie, "3")
			measure("Untouched", untouched, cookie, "ok")
			if be.ours {
				clk.Advance(session.DefaultTouchInterval)
				measure("ReadOnly, touch due", read, cookie, "3")
			}
			for kind, w := range want[name] {
				if got[kind] != w {
					t.Errorf("%s: %d round trips, want %d", kind, got[kind], w)
				}
			}
			t.Logf("round trips per request: %v", got)
		})
	}
}
