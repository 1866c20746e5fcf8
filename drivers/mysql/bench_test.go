package mysql

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldrv "github.com/go-sql-driver/mysql"
	session "github.com/websession/websession/core"
)

// benchData is a typical small session: a few JSON values.
var benchData = []byte(`{"v":1,"ip":"203.0.113.7","values":{"count":42,"user":"alice","csrf":"p3Xb1mV0kqQ"}}`)

var benchKeys atomic.Int64

// BenchmarkOps measures each Store operation alone on one warm connection,
// with the round trips it costs.
func BenchmarkOps(b *testing.B) {
	ctx := context.Background()
	var rt roundTrips
	s := newTestStore(b, "ws_bench_ops", func(c *mysqldrv.Config) { c.DialFunc = rt.dialer() })
	s.DB().SetMaxOpenConns(1)
	mustCreateB(b, s, "hot", session.Record{Data: benchData, ATime: t0, Created: t0})
	version := uint64(1)

	run := func(name string, setup func(b *testing.B), op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			if setup != nil {
				setup(b)
			}
			before := rt.count()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := op(i); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(rt.count()-before)/float64(b.N), "roundtrips/op")
		})
	}
	run("Load", nil, func(int) error { _, err := s.Load(ctx, "hot"); return err })
	run("Create", nil, func(int) error {
		k := fmt.Sprintf("new%d", benchKeys.Add(1))
		return s.Create(ctx, k, session.Record{Data: benchData, ATime: t0, Created: t0})
	})
	run("Update", nil, func(i int) error {
		err := s.Update(ctx, "hot", session.Record{Data: benchData, ATime: t0.Add(time.Duration(i) * time.Microsecond), Version: version})
		version++
		return err
	})
	run("Touch", nil, func(i int) error { return s.Touch(ctx, "hot", t0.Add(time.Duration(i)*time.Microsecond)) })
	run("Delete", func(b *testing.B) {
		b.StopTimer()
		if _, err := s.DB().Exec("DELETE FROM ws_bench_ops WHERE session_id LIKE 'expired%'"); err != nil {
			b.Fatal(err)
		}
		fillExpired(b, s.DB(), "ws_bench_ops", min(b.N, 1_000_000), t0)
		b.StartTimer()
	}, func(i int) error { return s.Delete(ctx, fmt.Sprintf("expired%d", i%1_000_000)) })

	b.Run("LoadParallel", func(b *testing.B) {
		s := storeOn(b, openPool(b, nil), "ws_bench_ops")
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.Load(ctx, "hot"); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

func mustCreateB(b *testing.B, s *Store, key string, r session.Record) {
	b.Helper()
	if err := s.Create(context.Background(), key, r); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCleanupMillion deletes a million expired sessions while a reader
// keeps loading live ones on another pool, and reports how long the cleanup
// took and what the readers saw meanwhile.
func BenchmarkCleanupMillion(b *testing.B) {
	const expired, live = 1_000_000, 1000
	ctx := context.Background()
	s := newTestStore(b, "ws_bench_cleanup", nil)
	reader := storeOn(b, openPool(b, nil), "ws_bench_cleanup")
	for i := range live {
		mustCreateB(b, s, fmt.Sprintf("live%d", i), session.Record{Data: benchData, ATime: t0, Created: t0})
	}
	var (
		cleanupTotal time.Duration
		loads        int64
		loadTotal    time.Duration
		loadMax      time.Duration
	)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fillExpired(b, s.DB(), "ws_bench_cleanup", expired, t0.Add(-48*time.Hour))
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := reader.Load(ctx, fmt.Sprintf("live%d", i%live)); err != nil {
					b.Error(err)
					return
				}
				d := time.Since(start)
				loads++
				loadTotal += d
				loadMax = max(loadMax, d)
			}
		}()
		b.StartTimer()
		start := time.Now()
		n, err := s.Cleanup(ctx, t0.Add(-24*time.Hour))
		cleanupTotal += time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil || n != expired {
			b.Fatalf("Cleanup = %d, %v; want %d", n, err, expired)
		}
	}
	b.ReportMetric(cleanupTotal.Seconds()/float64(b.N), "cleanup-s/op")
	b.ReportMetric(float64(expired*b.N)/cleanupTotal.Seconds(), "rows/s")
	if loads > 0 {
		b.ReportMetric(float64(loadTotal.Microseconds())/float64(loads), "load-avg-µs")
		b.ReportMetric(float64(loadMax.Microseconds()), "load-max-µs")
		b.ReportMetric(float64(loads)/cleanupTotal.Seconds(), "loads/s")
	}
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
	const clients, table = 50, "ws_bench_pool"
	freshTable(b, openPool(b, nil), table)
	for _, tc := range []struct {
		name string
		open func(ctx context.Context) *Store
	}{
		{"database-sql-defaults", func(ctx context.Context) *Store {
			s, err := New(ctx, openPool(b, nil), WithTable(table))
			if err != nil {
				b.Fatal(err)
			}
			s.ownsDB = true // closed with the store, so that no sub-benchmark's connections outlive it
			return s
		}},
		{"Open-defaults", func(ctx context.Context) *Store {
			s, err := Open(ctx, testDSN(), WithTable(table))
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
		{"Open-WithMaxConns(32)", func(ctx context.Context) *Store {
			s, err := Open(ctx, testDSN(), WithTable(table), WithMaxConns(32))
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
	var mu sync.Mutex
	var lat []time.Duration
	before := s.DB().Stats()
	b.SetParallelism((clients + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		key := fmt.Sprintf("pool%d", benchKeys.Add(1))
		if err := s.Create(ctx, key, session.Record{Data: benchData, ATime: t0, Created: t0}); err != nil {
			b.Error(err)
			return
		}
		var mine []time.Duration
		for pb.Next() {
			t := time.Now()
			r, err := s.Load(ctx, key)
			if err == nil {
				err = s.Update(ctx, key, session.Record{Data: benchData, ATime: t0, Version: r.Version})
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
// The table is filled by one INSERT ... SELECT per size; ending an owner's
// sessions puts them back, untimed, before the next iteration, so the
// table keeps its size. index-reads/op counts the index entries one LoadOwned reads:
// the work, which the machine's load does not blur.
func BenchmarkOwner(b *testing.B) {
	const perOwner, owners, targets = 10, 100_000, 100
	// Both tables are filled before anything is timed, so that neither
	// size is measured while the server still writes out the other fill.
	ctx := context.Background()
	stores := map[int]*Store{}
	sizes := []int{10_000, 1_000_000}
	for _, total := range sizes {
		table := fmt.Sprintf("ws_bench_owner_%d", total)
		s := newTestStore(b, table, nil)
		// The owners measured: target0..target99, 10 sessions each; the
		// rest of the table: sessions of o0..o99999 (and some anonymous).
		fillOwned(b, s, "f", total-targets*perOwner, "IF(i % 7 = 0, '', CONCAT('o', i % "+fmt.Sprint(owners)+"))")
		fillOwned(b, s, "t", targets*perOwner, "CONCAT('target', i % "+fmt.Sprint(targets)+")")
		if _, err := s.DB().ExecContext(ctx, "ANALYZE TABLE "+s.Table()); err != nil {
			b.Fatal(err)
		}
		var n int
		if err := s.DB().QueryRowContext(ctx, "SELECT COUNT(*) FROM "+s.Table()).Scan(&n); err != nil || n != total {
			b.Fatalf("table holds %d sessions (%v), want %d", n, err, total)
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
			b.ReportMetric(float64(ownedRowsRead(b, s, "target1")), "index-reads/op")
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

// fillOwned inserts n sessions named prefix0..., whose owner is the SQL
// expression owner of their number i, in one statement (a cross join of
// digit tables, which MySQL 8 and MariaDB both run).
func fillOwned(tb testing.TB, s *Store, prefix string, n int, owner string) {
	tb.Helper()
	digits := "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 " +
		"UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	q := "INSERT INTO " + s.Table() + " (session_id, atime, data, created, version, owner) " +
		"SELECT CONCAT(?, i), ?, 'x', ?, 1, " + owner + " FROM (" +
		"SELECT a.d + 10*b.d + 100*c.d + 1000*e.d + 10000*f.d + 100000*g.d AS i FROM " +
		digits + " a, " + digits + " b, " + digits + " c, " + digits + " e, " + digits + " f, " + digits + " g) n WHERE i < ?"
	at := t0.UTC().Truncate(time.Microsecond)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if _, err := s.DB().ExecContext(ctx, q, prefix, at, at, n); err != nil {
		tb.Fatal(err)
	}
}

// ownedRowsRead returns how many index entries InnoDB reads to run
// LoadOwned's statement for owner (the session's Handler_read_key and
// Handler_read_next counters before and after it): a measure of its cost
// that the machine's load does not blur.
func ownedRowsRead(tb testing.TB, s *Store, owner string) int {
	tb.Helper()
	ctx := context.Background()
	conn, err := s.DB().Conn(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close()
	reads := func() int {
		var n int
		if err := conn.QueryRowContext(ctx, `SELECT CAST(SUM(VARIABLE_VALUE) AS UNSIGNED) FROM information_schema.SESSION_STATUS
			WHERE VARIABLE_NAME IN ('HANDLER_READ_KEY', 'HANDLER_READ_NEXT')`).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		return n
	}
	before := reads()
	rows, err := conn.QueryContext(ctx, "SELECT session_id, data, atime, created, version, owner FROM "+s.Table()+" WHERE owner = ?", owner)
	if err != nil {
		tb.Fatal(err)
	}
	for rows.Next() {
	}
	if err := rows.Close(); err != nil {
		tb.Fatal(err)
	}
	return reads() - before
}
