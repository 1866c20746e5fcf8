package postgres

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lib/pq"
	session "github.com/websession/websession/core"
)

// BenchmarkOps measures each store operation against the server, one at a
// time on one warm connection, with the round trips each makes
// (trips/op, counted on the wire as in TestRoundTrips).
func BenchmarkOps(b *testing.B) {
	dsn := testDSN(b)
	db, d := countingDB(b, dsn)
	s := newStore(b, db, WithSchema(newSchema(b)))
	ctx := context.Background()
	data := make([]byte, 200) // about what a small JSON session encodes to
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	mustCreateB := func(key string) {
		if err := s.Create(ctx, key, session.Record{Data: data, ATime: t0, Created: t0}); err != nil {
			b.Fatal(err)
		}
	}
	mustCreateB("hot")
	version := uint64(1)
	report := func(b *testing.B, start int64) {
		b.ReportMetric(float64(d.trips.Load()-start)/float64(b.N), "trips/op")
	}
	run := func(name string, setup func(b *testing.B), op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			if setup != nil {
				setup(b)
			}
			if err := op(-1); err != nil { // warm: prepares the statement
				b.Fatal(err)
			}
			b.ReportAllocs()
			start := d.trips.Load()
			b.ResetTimer()
			for i := range b.N {
				if err := op(i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			report(b, start)
		})
	}
	prefix := ""
	run("Load", nil, func(int) error { _, err := s.Load(ctx, "hot"); return err })
	run("Create", func(*testing.B) { prefix = randHex(4) }, func(i int) error {
		return s.Create(ctx, fmt.Sprintf("c%s_%d", prefix, i), session.Record{Data: data, ATime: t0, Created: t0})
	})
	run("Update", nil, func(int) error {
		err := s.Update(ctx, "hot", session.Record{Data: data, ATime: t0, Version: version})
		version++
		return err
	})
	run("Touch", nil, func(int) error { return s.Touch(ctx, "hot", t0) })
	run("Delete", func(b *testing.B) {
		prefix = randHex(4)
		if _, err := admin(b).Exec(`INSERT INTO `+s.Table()+` SELECT $1 || g, '', $2, $2, 1 FROM generate_series(-1, $3::int) g`, "d"+prefix+"_", t0, b.N); err != nil {
			b.Fatal(err)
		}
	}, func(i int) error { return s.Delete(ctx, fmt.Sprintf("d%s_%d", prefix, i)) })
}

// BenchmarkRequests measures whole requests through a session.Manager
// over the store (httptest server and client included), with the round
// trips to PostgreSQL each makes.
func BenchmarkRequests(b *testing.B) {
	dsn := testDSN(b)
	db, d := countingDB(b, dsn)
	s := newStore(b, db, WithSchema(newSchema(b)))
	for _, kind := range []string{"read-only", "counter", "new"} {
		b.Run(kind, func(b *testing.B) {
			get, _ := requestClient(b, s)
			if kind != "new" {
				get("/count", true) // the session the requests then use
			}
			path := map[string]string{"read-only": "/read", "counter": "/count", "new": "/count"}[kind]
			keep := kind != "new"
			get(path, keep)
			start := d.trips.Load()
			b.ResetTimer()
			for range b.N {
				get(path, keep)
			}
			b.StopTimer()
			b.ReportMetric(float64(d.trips.Load()-start)/float64(b.N), "trips/op")
		})
	}
}

// BenchmarkCleanupMillion deletes a million expired rows (made by one
// INSERT ... SELECT generate_series) in batches while readers keep loading
// live sessions, and reports the readers' latency during the cleanup next
// to their latency over the same table without a cleanup (for two seconds
// before it): a long lock or one giant transaction would show as a gap
// between the two. Run it with -benchtime=1x; each iteration refills the
// table.
func BenchmarkCleanupMillion(b *testing.B) {
	for _, batch := range []int{DefaultCleanupBatch, 5000} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) { benchCleanupMillion(b, batch) })
	}
}

func benchCleanupMillion(b *testing.B, batch int) {
	const expired, live, readers = 1_000_000, 1000, 2
	dsn := testDSN(b)
	s := newStore(b, openDB(b, dsn), WithSchema(newSchema(b)), WithCleanupBatch(batch))
	ctx := context.Background()
	for i := range live {
		if err := s.Create(ctx, fmt.Sprint("live", i), session.Record{Data: []byte("live"), ATime: t0, Created: t0}); err != nil {
			b.Fatal(err)
		}
	}
	// readWhile runs the readers until fn returns and gives their
	// latencies.
	readWhile := func(fn func()) []time.Duration {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var lat []time.Duration
		var readErr atomic.Value
		for r := range readers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(r), 1))
				var mine []time.Duration
				for {
					select {
					case <-stop:
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
						return
					default:
					}
					start := time.Now()
					if _, err := s.Load(ctx, fmt.Sprint("live", rng.IntN(live))); err != nil {
						readErr.Store(err)
					}
					mine = append(mine, time.Since(start))
				}
			}()
		}
		fn()
		close(stop)
		wg.Wait()
		if err, _ := readErr.Load().(error); err != nil {
			b.Fatalf("a reader failed: %v", err)
		}
		return lat
	}
	var during, idle []time.Duration
	var cleanupTime time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		if _, err := admin(b).Exec(`INSERT INTO `+s.Table()+` (session_id, data, atime, created, version)
SELECT 'old' || g, '\x00'::bytea, $1::timestamptz - g * interval '1 millisecond', $1::timestamptz - interval '1 day', 1
FROM generate_series(1, $2::int) AS g`, t0.Add(-time.Hour), expired); err != nil {
			b.Fatal(err)
		}
		if _, err := admin(b).Exec(`VACUUM ANALYZE ` + s.Table()); err != nil {
			b.Fatal(err)
		}
		idle = append(idle, readWhile(func() { time.Sleep(2 * time.Second) })...) // a measuring window, not a wait for expiry

		var n int
		var err error
		during = append(during, readWhile(func() {
			b.StartTimer()
			start := time.Now()
			n, err = s.Cleanup(ctx, t0)
			cleanupTime += time.Since(start)
			b.StopTimer()
		})...)
		if err != nil || n != expired {
			b.Fatalf("Cleanup = %d, %v; want %d", n, err, expired)
		}
	}
	b.ReportMetric(cleanupTime.Seconds()/float64(b.N), "cleanup-s/op")
	b.ReportMetric(float64(expired)/(cleanupTime.Seconds()/float64(b.N)), "rows/s")
	report := func(lat []time.Duration, label string) {
		if len(lat) == 0 {
			return
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		var sum time.Duration
		for _, l := range lat {
			sum += l
		}
		b.ReportMetric(float64(sum.Microseconds())/float64(len(lat)), label+"-avg-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), label+"-p99-µs")
		b.ReportMetric(float64(lat[len(lat)*999/1000].Microseconds()), label+"-p999-µs")
		b.ReportMetric(float64(lat[len(lat)-1].Microseconds()), label+"-max-µs")
	}
	report(during, "read")
	report(idle, "idle-read")
}

// BenchmarkPool runs a counter-like request mix (Load, then Update of the
// version just read; the session of each client its own) from many
// clients at once, over a pool with database/sql's defaults (2 idle
// connections, no limit on open ones) and over the pool Open makes. It
// reports the requests' p99 latency and how often a connection was closed
// for lack of idle room (and so reopened by a later request). Each client
// either sends its next request at once (think=0) or after 1ms, the rest
// of a real request (handler, network): then the number of requests in
// flight varies, and a pool that keeps only 2 idle connections closes
// and reopens connections all the time. Run it with -benchtime of a few
// seconds: ns/op is the wall time per request of all clients together
// (req/s reports its inverse).
func BenchmarkPool(b *testing.B) {
	const clients = 50
	dsn := testDSN(b)
	schema := newSchema(b)
	for _, tc := range []struct {
		name string
		open func(ctx context.Context) *Store
	}{
		{"database-sql-defaults", func(ctx context.Context) *Store {
			db, err := sql.Open("postgres", dsn)
			if err != nil {
				b.Fatal(err)
			}
			s, err := New(ctx, db, WithSchema(schema))
			if err != nil {
				b.Fatal(err)
			}
			s.ownsDB = true // closed with the store, so that no sub-benchmark's connections outlive it
			return s
		}},
		{"Open-defaults", func(ctx context.Context) *Store {
			s, err := Open(ctx, dsn, WithSchema(schema))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"Open-WithMaxConns(32)", func(ctx context.Context) *Store {
			s, err := Open(ctx, dsn, WithSchema(schema), WithMaxConns(32))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		for _, think := range []time.Duration{0, time.Millisecond} {
			b.Run(fmt.Sprintf("%s/think=%v", tc.name, think), func(b *testing.B) {
				ctx := context.Background()
				s := tc.open(ctx)
				defer s.Close()
				if err := s.CreateTable(ctx); err != nil {
					b.Fatal(err)
				}
				benchPool(b, s, clients, think)
			})
		}
	}
}

// benchPool runs the counter mix over s from clients goroutines.
func benchPool(b *testing.B, s *Store, clients int, think time.Duration) {
	ctx := context.Background()
	prefix := randHex(4)
	var next atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	data := []byte(`{"count":1}`)
	before := s.DB().Stats()
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("pool%s_%d", prefix, next.Add(1))
		if err := s.Create(ctx, key, session.Record{Data: data, ATime: t0, Created: t0}); err != nil {
			b.Error(err)
			return
		}
		var mine []time.Duration
		for pb.Next() {
			t := time.Now()
			r, err := s.Load(ctx, key)
			if err == nil {
				err = s.Update(ctx, key, session.Record{Data: data, ATime: t0, Version: r.Version})
			}
			if err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t))
			if think > 0 {
				time.Sleep(think) // the rest of the request: the handler, the network
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed := time.Since(start)
	b.StopTimer()
	after := s.DB().Stats()
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "req/s")
	b.ReportMetric(float64(after.MaxIdleClosed-before.MaxIdleClosed)/float64(len(lat)), "reconnects/op")
	b.ReportMetric(float64(after.MaxOpenConnections), "max-conns")
}

// BenchmarkOwner lists (LoadOwned) and ends (LoadOwned, then Delete of
// each) the sessions of one owner, who has 10, in tables of 10,000 and of
// 1,000,000 sessions whose other owners number up to 100,000. The time per
// operation must not grow with the table: LoadOwned reads the owner index.
// The table is filled by one INSERT ... SELECT generate_series per size;
// ending an owner's sessions puts them back, untimed, before the next
// iteration, so the table keeps its size. pages/op counts the buffer pages one LoadOwned touches:
// the work, which the machine's load does not blur.
func BenchmarkOwner(b *testing.B) {
	const perOwner, owners, targets = 10, 100_000, 100
	dsn := testDSN(b)
	// Both tables are filled before anything is timed, so that neither
	// size is measured while the server still writes out the other fill.
	ctx := context.Background()
	stores := map[int]*Store{}
	sizes := []int{10_000, 1_000_000}
	for _, total := range sizes {
		s := newStore(b, openDB(b, dsn), WithSchema(newSchema(b)))
		// The owners measured: target0..target99, 10 sessions each; the
		// rest of the table: sessions of o0..o99999 (and some anonymous).
		fill := func(query string, args ...any) {
			if _, err := admin(b).ExecContext(ctx, query, args...); err != nil {
				b.Fatal(err)
			}
		}
		insert := `INSERT INTO ` + s.Table() + ` (session_id, data, atime, created, version, owner) `
		fill(insert+`SELECT 'f' || g, '\x00'::bytea, $1, $1, 1, CASE WHEN g % 7 = 0 THEN '' ELSE 'o' || (g % $3) END
FROM generate_series(1, $2::int) AS g`, t0, total-targets*perOwner, owners)
		fill(insert+`SELECT 't' || g, '\x00'::bytea, $1, $1, 1, 'target' || (g % $2) FROM generate_series(1, $3::int) AS g`, t0, targets, targets*perOwner)
		fill(`VACUUM ANALYZE ` + s.Table())
		if n := count(b, s); n != total {
			b.Fatalf("table holds %d sessions, want %d", n, total)
		}
		stores[total] = s
	}
	for _, total := range sizes {
		s := stores[total]
		b.Run(fmt.Sprintf("LoadOwned/sessions=%d", total), func(b *testing.B) {
			for i := range b.N {
				recs, err := s.LoadOwned(ctx, fmt.Sprint("target", i%targets))
				if err != nil || len(recs) != perOwner {
					b.Fatalf("LoadOwned = %d records, %v", len(recs), err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(ownedPages(b, s, "target1")), "pages/op")
		})
		b.Run(fmt.Sprintf("EndAll/sessions=%d", total), func(b *testing.B) {
			for i := range b.N {
				owner := fmt.Sprint("target", i%targets)
				recs, err := s.LoadOwned(ctx, owner)
				if err != nil || len(recs) != perOwner {
					b.Fatalf("LoadOwned = %d records, %v", len(recs), err)
				}
				for _, r := range recs {
					if err := s.Delete(ctx, r.Key); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				for _, r := range recs {
					if err := s.Create(ctx, r.Key, r.Record); err != nil {
						b.Fatal(err)
					}
				}
				b.StartTimer()
			}
		})
	}
}

// ownedPages returns how many buffer pages PostgreSQL touches to run
// LoadOwned's statement for owner (EXPLAIN ANALYZE with BUFFERS, in a
// generic plan as the prepared statement has): a measure of its cost that
// the machine's load does not blur.
func ownedPages(tb testing.TB, s *Store, owner string) int {
	tb.Helper()
	ctx := context.Background()
	tx := admin(tb).MustBeginTx(ctx, nil)
	defer func() { _ = tx.Rollback() }()
	tx.MustExecContext(ctx, `SET LOCAL plan_cache_mode = force_generic_plan`)
	tx.MustExecContext(ctx, `PREPARE ws_owned_pages(text) AS `+loadOwnedQuery(s.Table()))
	defer tx.MustExecContext(ctx, `DEALLOCATE ws_owned_pages`) // a prepared statement outlives the transaction
	var plan []byte
	if err := tx.GetContext(ctx, &plan, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE ws_owned_pages(`+pq.QuoteLiteral(owner)+`)`); err != nil {
		tb.Fatal(err)
	}
	var out []struct {
		Plan struct {
			Hit  int `json:"Shared Hit Blocks"`
			Read int `json:"Shared Read Blocks"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(plan, &out); err != nil || len(out) != 1 {
		tb.Fatalf("EXPLAIN output %s: %v", plan, err)
	}
	return out[0].Plan.Hit + out[0].Plan.Read
}
