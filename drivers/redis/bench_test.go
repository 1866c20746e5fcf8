package redisstore

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

// benchData is a typical small session: a few JSON values.
var benchData = []byte(`{"v":1,"ip":"203.0.113.7","values":{"count":42,"user":"alice","csrf":"p3Xb1mV0kqQ"}}`)

// BenchmarkOps measures each Store operation alone on one connection, with
// the round trips it costs.
func BenchmarkOps(b *testing.B) {
	requireRedis(b)
	var rt roundTrips
	o, err := redis.ParseURL(testURL())
	if err != nil {
		b.Fatal(err)
	}
	o.Dialer, o.PoolSize = rt.dial, 1
	s := testStore(b, newClientWith(b, o))
	ctx := context.Background()
	r := session.Record{Data: benchData, ATime: t0, Created: t0}
	mustCreate(b, s, "hot", r)
	version := uint64(1)
	run := func(name string, op func(i int) error) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
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
	run("Load", func(int) error { _, err := s.Load(ctx, "hot"); return err })
	var created, deleted int
	run("Create", func(int) error { created++; return s.Create(ctx, "new"+strconv.Itoa(created), r) })
	run("Update", func(i int) error {
		u := r
		u.ATime, u.Version = t0.Add(time.Duration(i)), version
		version++
		return s.Update(ctx, "hot", u)
	})
	run("Touch", func(i int) error { return s.Touch(ctx, "hot", t0.Add(time.Duration(i))) })
	run("Delete", func(int) error { deleted++; return s.Delete(ctx, "new"+strconv.Itoa(deleted)) })
}

// fillExpired writes n records with ATime at, with their index entries,
// straight into Redis (pipelined SET and ZADD, as the store lays them
// out), faster than n Creates.
func fillExpired(tb testing.TB, s *Store, n int, at time.Time) {
	tb.Helper()
	ctx := context.Background()
	rec := encode(session.Record{Data: benchData, ATime: at, Created: at}, 1, 0)
	sc := score(at)
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		pipe := s.client.Pipeline()
		for i := start; i < min(n, start+chunk); i++ {
			key := "expired" + strconv.Itoa(i)
			sh := shardOf(key)
			pipe.Set(ctx, s.recPrefix[sh]+key, rec, 0)
			pipe.ZAdd(ctx, s.indexKey[sh], redis.Z{Score: float64(sc), Member: key})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}

// latencies collects the durations of readers' Loads.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

// read runs readers goroutines loading live sessions through s until stop
// is closed.
func (l *latencies) read(tb testing.TB, s *Store, readers, live int, stop <-chan struct{}) *sync.WaitGroup {
	var wg sync.WaitGroup
	for g := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() { l.mu.Lock(); l.d = append(l.d, mine...); l.mu.Unlock() }()
			for i := g; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				if _, err := s.Load(context.Background(), "live"+strconv.Itoa(i%live)); err != nil {
					tb.Error(err)
					return
				}
				mine = append(mine, time.Since(start))
			}
		}()
	}
	return &wg
}

func (l *latencies) report(b *testing.B, prefix string) string {
	slices.Sort(l.d)
	n := len(l.d)
	if n == 0 {
		return prefix + ": no reads"
	}
	var sum time.Duration
	for _, d := range l.d {
		sum += d
	}
	q := func(p float64) time.Duration { return l.d[min(n-1, int(float64(n)*p))] }
	avg := sum / time.Duration(n)
	b.ReportMetric(float64(avg.Microseconds()), prefix+"-avg-µs")
	b.ReportMetric(float64(q(0.99).Microseconds()), prefix+"-p99-µs")
	b.ReportMetric(float64(l.d[n-1].Microseconds()), prefix+"-max-µs")
	return fmt.Sprintf("%s: %d reads, avg %v, p99 %v, p99.9 %v, max %v", prefix, n, avg, q(0.99), q(0.999), l.d[n-1])
}

// BenchmarkCleanupMillion deletes a million expired sessions while two
// readers keep loading live ones on another client, and reports how long
// the cleanup took and what the readers saw, beside what they saw for two
// seconds without a cleanup; for two cleanup batch sizes.
func BenchmarkCleanupMillion(b *testing.B) {
	for _, batch := range []int{100, DefaultCleanupBatch} {
		b.Run("batch="+strconv.Itoa(batch), func(b *testing.B) { benchCleanupMillion(b, batch) })
	}
}

func benchCleanupMillion(b *testing.B, batch int) {
	const expired, live, readers = 1_000_000, 1000, 2
	c := newClient(b)
	s := testStore(b, c, WithCleanupBatch(batch))
	reader, err := New(context.Background(), newClient(b), WithKeyPrefix(s.KeyPrefix()))
	if err != nil {
		b.Fatal(err)
	}
	for i := range live {
		mustCreate(b, s, "live"+strconv.Itoa(i), session.Record{Data: benchData, ATime: t0, Created: t0})
	}
	var cleanupTotal time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		fillExpired(b, s, expired, t0.Add(-48*time.Hour))

		var quiet latencies
		stop := make(chan struct{})
		wg := quiet.read(b, reader, readers, live, stop)
		time.Sleep(2 * time.Second) // the baseline's length, not a sync
		close(stop)
		wg.Wait()

		var during latencies
		stop = make(chan struct{})
		wg = during.read(b, reader, readers, live, stop)
		b.StartTimer()
		start := time.Now()
		n, err := s.Cleanup(context.Background(), t0.Add(-24*time.Hour))
		d := time.Since(start)
		b.StopTimer()
		close(stop)
		wg.Wait()
		cleanupTotal += d
		if err != nil || n != expired {
			b.Fatalf("Cleanup = %d, %v; want %d", n, err, expired)
		}
		b.Logf("cleanup of %d sessions, batch %d: %v (%.0f/s); %s; %s", n, batch, d, float64(n)/d.Seconds(),
			during.report(b, "during"), quiet.report(b, "without"))
	}
	b.ReportMetric(cleanupTotal.Seconds()/float64(b.N), "cleanup-s/op")
	b.ReportMetric(float64(expired*b.N)/cleanupTotal.Seconds(), "sessions/s")
}

// BenchmarkOwners lists, and ends, the ten sessions of one owner among
// 10 000 sessions of 1000 owners and among 1 000 000 sessions of 100 000
// owners: the cost must not grow with the store (issue 16's benchmark).
func BenchmarkOwners(b *testing.B) {
	const perOwner = 10
	for _, total := range []int{10_000, 1_000_000} {
		b.Run("sessions="+strconv.Itoa(total), func(b *testing.B) {
			c := newClient(b)
			s := testStore(b, c)
			owners := total / perOwner
			fillOwned(b, s, total, owners)
			ctx := context.Background()
			b.Run("list", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					recs, err := s.LoadOwned(ctx, "u"+strconv.Itoa(i%owners))
					if err != nil || len(recs) != perOwner {
						b.Fatalf("LoadOwned = %d records, %v; want %d", len(recs), err, perOwner)
					}
				}
			})
			b.Run("end-all", func(b *testing.B) {
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					owner := "u" + strconv.Itoa(i%owners)
					recs, err := s.LoadOwned(ctx, owner)
					if err != nil || len(recs) != perOwner {
						b.Fatalf("LoadOwned = %d records, %v; want %d", len(recs), err, perOwner)
					}
					for _, r := range recs {
						if err := s.Delete(ctx, r.Key); err != nil {
							b.Fatal(err)
						}
					}
					b.StopTimer()
					for _, r := range recs {
						mustCreate(b, s, r.Key, r.Record)
					}
					b.StartTimer()
				}
			})
		})
	}
}

// fillOwned writes n records, session i bound to owner "u<i mod owners>",
// with their index and owner entries, straight into Redis as the store
// lays them out.
func fillOwned(tb testing.TB, s *Store, n, owners int) {
	tb.Helper()
	ctx := context.Background()
	const chunk = 5000
	for start := 0; start < n; start += chunk {
		pipe := s.client.Pipeline()
		for i := start; i < min(n, start+chunk); i++ {
			key := "s" + strconv.Itoa(i)
			owner := "u" + strconv.Itoa(i%owners)
			sh := shardOf(key)
			token := uint64(i) | 1
			r := session.Record{Data: benchData, ATime: t0, Created: t0, Owner: owner}
			pipe.Set(ctx, s.recPrefix[sh]+key, encode(r, 1, token), 0)
			pipe.ZAdd(ctx, s.indexKey[sh], redis.Z{Score: float64(score(t0)), Member: key})
			pipe.HSet(ctx, s.ownerKey(owner), key, versionBytes(token))
		}
		if _, err := pipe.Exec(ctx); err != nil {
			tb.Fatal(err)
		}
	}
}
