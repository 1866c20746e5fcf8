package redisstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
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

// quiet drops go-redis's log lines (failed dials while the failover
// tests have a server down); the tests check the errors themselves.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	flag.Parse()
	redis.SetLogger(quiet{})
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
	if m, ok := c.(multiStep); ok {
		c = m.UniversalClient
	}
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

// t0 is a time with every digit of a time.Time in use, in a zone that is
// not UTC.
var t0 = time.Date(2033, time.May, 17, 9, 3, 7, 123456789, time.FixedZone("UTC-03:30", -(3*3600+30*60)))

// rec returns a record with data and both times at at.
func rec(data string, at time.Time) session.Record {
	return session.Record{Data: []byte(data), ATime: at, Created: at}
}

func mustCreate(tb testing.TB, s *Store, key string, r session.Record) {
	tb.Helper()
	if err := s.Create(context.Background(), key, r); err != nil {
		tb.Fatalf("Create(%s): %v", key, err)
	}
}

func mustLoad(tb testing.TB, s *Store, key string) session.Record {
	tb.Helper()
	r, err := s.Load(context.Background(), key)
	if err != nil {
		tb.Fatalf("Load(%s): %v", key, err)
	}
	return r
}

func mustMissing(tb testing.TB, s *Store, key string) {
	tb.Helper()
	if _, err := s.Load(context.Background(), key); !errors.Is(err, session.ErrNotFound) {
		tb.Fatalf("Load(%s) = %v, want ErrNotFound", key, err)
	}
}

// multiStep hides the concrete type of a one-node client, so that the
// store uses the protocol it uses for a Cluster (owner sets written in
// their own commands) on the standalone server.
type multiStep struct{ redis.UniversalClient }

// eachTopology runs f on a store over the standalone server (one-node
// protocol), over the standalone server through the Cluster protocol, and
// over the test cluster.
func eachTopology(t *testing.T, f func(t *testing.T, s *Store), opts ...Option) {
	t.Run("standalone", func(t *testing.T) { f(t, testStore(t, newClient(t), opts...)) })
	t.Run("standalone-multistep", func(t *testing.T) {
		c := newClient(t)
		s := testStore(t, multiStep{c}, opts...)
		if s.oneNode {
			t.Fatal("store over a wrapped client uses the one-node protocol")
		}
		f(t, s)
	})
	t.Run("cluster", func(t *testing.T) { f(t, testStore(t, testCluster(t).client(t), opts...)) })
}

// keysInShard returns n distinct valid keys whose shard is shard.
func keysInShard(shard, n int, tag string) []string {
	var keys []string
	for i := 0; len(keys) < n; i++ {
		k := fmt.Sprintf("%s%d", tag, i)
		if shardOf(k) == shard {
			keys = append(keys, k)
		}
	}
	return keys
}

// roundTrips counts request/response exchanges on the connections of a
// client: each time the client reads after having written, it waited for
// the server once.
type roundTrips struct{ n atomic.Int64 }

func (r *roundTrips) count() int64 { return r.n.Load() }

func (r *roundTrips) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c, rt: r}, nil
}

type countingConn struct {
	net.Conn
	rt     *roundTrips
	wrote  atomic.Bool
	pubsub atomic.Bool // a subscription's connection: not a request's
}

func (c *countingConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("SUBSCRIBE")) || bytes.Contains(b, []byte("subscribe")) {
		c.pubsub.Store(true)
	}
	c.wrote.Store(true)
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	if c.wrote.Swap(false) && !c.pubsub.Load() {
		c.rt.n.Add(1)
	}
	return c.Conn.Read(b)
}

// newClientWith returns a client with options o, closed when tb ends.
func newClientWith(tb testing.TB, o *redis.Options) *redis.Client {
	c := redis.NewClient(o)
	tb.Cleanup(func() { c.Close() })
	return c
}
