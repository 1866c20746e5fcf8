package redisstore

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
)

// harness runs the suite with one key prefix per namespace under a prefix
// of this run's; every NewStore call makes a new client (a new pool), as
// another application server would.
func harness(tb testing.TB, newClient func(testing.TB) redis.UniversalClient, opts ...Option) conformance.Harness {
	admin := newClient(tb)
	base := uniquePrefix(tb, admin)
	return conformance.Harness{
		// Nanoseconds, from the caller's clock.
		Precision: 0,
		NewStore: func(tb testing.TB, namespace string) session.Store {
			c := newClient(tb)
			s, err := New(testCtx(tb), c, append([]Option{WithKeyPrefix(base + namespace + ":")}, opts...)...)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() { s.Close() })
			return s
		},
	}
}

func standalone(tb testing.TB) redis.UniversalClient { return newClient(tb) }

// TestConformance runs the whole suite against the standalone server,
// nothing skipped.
func TestConformance(t *testing.T) {
	requireRedis(t)
	conformance.Run(t, harness(t, standalone))
}

// TestConformanceExpiry runs it again with Redis's expiry on (two hundred
// years: the fake clock's times must never make Redis expire a record the
// suite still counts on), so that every write also sets PXAT and sweeps.
func TestConformanceExpiry(t *testing.T) {
	requireRedis(t)
	conformance.Run(t, harness(t, standalone, WithExpiry(200*365*24*time.Hour)))
}

// TestConformanceClientCache runs it with the client cache, declaring the
// cache's bound on staleness: a second instance may see another's change
// up to that late (in practice, within a millisecond).
func TestConformanceClientCache(t *testing.T) {
	requireRedis(t)
	h := harness(t, standalone, WithClientCache(64<<20))
	h.Staleness = cacheStaleness
	conformance.Run(t, h)
}

func BenchmarkConformance(b *testing.B) {
	requireRedis(b)
	conformance.RunBenchmarks(b, harness(b, standalone))
}
