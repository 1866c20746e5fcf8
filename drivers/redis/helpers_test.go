package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The tests run against a real Redis: WEBSESSION_REDIS_URL, default the
// standalone server on loopback. The Cluster tests start their own nodes
// (see cluster_test.go).
const (
	urlEnv     = "WEBSESSION_REDIS_URL"
	defaultURL = "redis://127.0.0.1:6379/0"
)

func testURL() string {
	if u := os.Getenv(urlEnv); u != "" {
		return u
	}
	return defaultURL
}

var reachable = sync.OnceValue(func() error {
	o, err := redis.ParseURL(testURL())
	if err != nil {
		return fmt.Errorf("%s is not a valid URL: %w", urlEnv, err)
	}
	c := redis.NewClient(o)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return c.Ping(ctx).Err()
})

// requireRedis skips the test, loudly, when the server is unreachable,
// except in CI, where a missing server is a failure.
func requireRedis(tb testing.TB) {
	tb.Helper()
	err := reachable()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("Redis unreachable at %q: %v (start it or set %s)", testURL(), err, urlEnv)
	if os.Getenv("CI") == "true" {
		tb.Fatal("CI=true: " + msg)
	}
	tb.Skip("SKIPPING: " + msg)
}

func TestMain(m *testing.M) {
	flag.Parse()
	if err := reachable(); err != nil && os.Getenv("CI") != "true" {
		// Examples cannot skip themselves; leave them out instead.
		fmt.Fprintf(os.Stderr, "SKIPPING the examples: Redis unreachable at %q: %v (set %s)\n", testURL(), err, urlEnv)
		flag.Set("test.skip", "^Example")
	}
	code := m.Run()
	stopClusters()
	os.Exit(code)
}

// newClient returns a client of the test server, closed when tb ends.
func newClient(tb testing.TB) *redis.Client {
	tb.Helper()
	requireRedis(tb)
	o, err := redis.ParseURL(testURL())
	if err != nil {
		tb.Fatal(err)
	}
	o.ContextTimeoutEnabled = true
	c := redis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}

// uniquePrefix returns a key prefix no other run uses, and deletes every
// key under it from c's server when tb ends.
func uniquePrefix(tb testing.TB, c redis.UniversalClient) string {
	tb.Helper()
	var b [6]byte
	rand.Read(b[:])
	prefix := "wst:" + hex.EncodeToString(b[:]) + ":"
	tb.Cleanup(func() { dropPrefix(tb, c, prefix) })
	return prefix
}

// dropPrefix deletes every key under prefix (a test's own keys: SCAN is
// fine here; the store never scans).
func dropPrefix(tb testing.TB, c redis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	drop := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		var keys []string
		for it.Next(ctx) {
			keys = append(keys, it.Val())
		}
		if err := it.Err(); err != nil {
			return err
		}
		for len(keys) > 0 {
			n := min(len(keys), 1000)
			// One key per UNLINK: in a Cluster the keys are in many slots.
			pipe := c.Pipeline()
			for _, k := range keys[:n] {
				pipe.Unlink(ctx, k)
			}
			if _, err := pipe.Exec(ctx); err != nil {
				return err
			}
			keys = keys[n:]
		}
		return nil
	}
	var err error
	switch c := c.(type) {
	case *redis.Client:
		err = drop(ctx, c)
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, drop)
	}
	if err != nil {
		tb.Errorf("deleting the keys under %q: %v", prefix, err)
	}
}

// testStore returns a store over c with a prefix of its own (unless opts
// set one), closed when tb ends.
func testStore(tb testing.TB, c redis.UniversalClient, opts ...Option) *Store {
	tb.Helper()
	opts = append([]Option{WithKeyPrefix(uniquePrefix(tb, c))}, opts...)
	s, err := New(testCtx(tb), c, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func testCtx(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	tb.Cleanup(cancel)
	return ctx
}
