package bench

// The Redis backends: our drivers/redis (over go-redis) beside scs's
// redisstore (over redigo), on the same server, each under a key prefix
// of its own that is deleted at the end.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	scsredis "github.com/alexedwards/scs/redisstore"
	redigo "github.com/gomodule/redigo/redis"
	goredis "github.com/redis/go-redis/v9"
	wsredis "github.com/websession/websession/drivers/redis"
)

func init() {
	// requireRedis, in open, skips (or fails, with CI=true) without a
	// server, so db stays "".
	backends = append(backends,
		backend{name: "ours-redis", ours: true, open: func(tb testing.TB, cfg openConfig) *instance { return openOursRedis(tb, cfg) }},
		backend{name: "ours-redis-cache", ours: true, open: func(tb testing.TB, cfg openConfig) *instance {
			return openOursRedis(tb, cfg, wsredis.WithClientCache(64<<20))
		}},
		backend{name: "scs-redis", open: openSCSRedis},
	)
}

func redisURL() string {
	if u := os.Getenv("WEBSESSION_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

var redisProbe = sync.OnceValue(func() error {
	o, err := goredis.ParseURL(redisURL())
	if err != nil {
		return fmt.Errorf("WEBSESSION_REDIS_URL: %w", err)
	}
	c := goredis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
})

// requireRedis skips tb (or fails it, with CI=true) if Redis is
// unreachable.
func requireRedis(tb testing.TB) {
	tb.Helper()
	if err := redisProbe(); err != nil {
		msg := fmt.Sprintf("redis unreachable at %q: %v; start the server or set WEBSESSION_REDIS_URL", redisURL(), err)
		if os.Getenv("CI") == "true" {
			tb.Fatalf("CI=true: %s", msg)
		}
		tb.Skipf("SKIPPING the redis backends: %s (CI=true makes this a failure)", msg)
	}
}

// redisPrefix returns a key prefix of its own for a backend, and deletes
// every key under it when tb ends.
func redisPrefix(tb testing.TB) string {
	tb.Helper()
	prefix := uniqueName() + ":"
	tb.Cleanup(func() {
		o, err := goredis.ParseURL(redisURL())
		if err != nil {
			tb.Error(err)
			return
		}
		c := goredis.NewClient(o)
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		pipe := c.Pipeline()
		for it.Next(ctx) {
			pipe.Unlink(ctx, it.Val())
		}
		if err := it.Err(); err != nil {
			tb.Errorf("cleanup: scanning %s*: %v", prefix, err)
		}
		if _, err := pipe.Exec(ctx); err != nil && err != goredis.Nil {
			tb.Errorf("cleanup: deleting %s*: %v", prefix, err)
		}
	})
	return prefix
}

func openOursRedis(tb testing.TB, cfg openConfig, opts ...wsredis.Option) *instance {
	requireRedis(tb)
	o, err := goredis.ParseURL(redisURL())
	if err != nil {
		tb.Fatal(err)
	}
	tr := new(trips)
	o.Dialer = tr.DialContext
	o.ContextTimeoutEnabled = true
	if cfg.maxConns > 0 {
		o.PoolSize = cfg.maxConns
	}
	c := goredis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	s, err := wsredis.New(setupCtx(tb), c, append([]wsredis.Option{wsredis.WithKeyPrefix(redisPrefix(tb))}, opts...)...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	in := openOurs(tb, cfg, s, tr)
	in.settle = func() {
		if err := s.SyncCache(setupCtx(tb)); err != nil {
			tb.Fatal(err)
		}
	}
	return in
}

// openSCSRedis configures redigo's pool as scs's README does (MaxIdle 10),
// so that connections are reused.
func openSCSRedis(tb testing.TB, cfg openConfig) *instance {
	requireRedis(tb)
	tr := new(trips)
	pool := &redigo.Pool{
		MaxIdle: 10,
		Dial:    func() (redigo.Conn, error) { return redigo.DialURL(redisURL(), redigo.DialNetDial(tr.Dial)) },
	}
	if cfg.maxConns > 0 {
		pool.MaxIdle, pool.MaxActive, pool.Wait = cfg.maxConns, cfg.maxConns, true
	}
	tb.Cleanup(func() { pool.Close() })
	return openSCS(tb, scsredis.NewWithPrefix(pool, redisPrefix(tb)), tr)
}
