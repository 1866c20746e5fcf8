package redisstore

import (
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// DefaultKeyPrefix starts every key of a store made without WithKeyPrefix.
const DefaultKeyPrefix = "websession:"

// MaxKeyPrefixLen bounds WithKeyPrefix.
const MaxKeyPrefixLen = 64

// DefaultCleanupBatch is how many index entries one Cleanup script examines
// at most without WithCleanupBatch: a script runs alone on its Redis node,
// and a few hundred deletions keep it well under a millisecond, so requests
// waiting behind it barely notice.
const DefaultCleanupBatch = 500

// MaxCleanupBatch bounds WithCleanupBatch.
const MaxCleanupBatch = 10_000

// An Option configures a Store. New and Open report the first invalid one.
type Option func(*options) error

type options struct {
	prefix    string
	expiry    time.Duration // 0: no expiry
	batch     int
	cacheSize int // bytes; 0: no client cache
	logger    *slog.Logger
}

func defaultOptions() options {
	return options{prefix: DefaultKeyPrefix, batch: DefaultCleanupBatch}
}

// WithKeyPrefix starts every key the store writes with prefix (default
// DefaultKeyPrefix), so that applications sharing one Redis, or one
// application's test runs, stay apart; stores with the same prefix share
// their sessions. The prefix is up to MaxKeyPrefixLen printable ASCII
// bytes without '{' or '}' (they would change the keys' hash slots in a
// Cluster, see the package documentation), and may be empty.
func WithKeyPrefix(prefix string) Option {
	return func(o *options) error {
		if len(prefix) > MaxKeyPrefixLen {
			return fmt.Errorf("key prefix of %d bytes, more than %d", len(prefix), MaxKeyPrefixLen)
		}
		for i := 0; i < len(prefix); i++ {
			if c := prefix[i]; c < 0x21 || c > 0x7e {
				return fmt.Errorf("key prefix %q: byte %#x is not printable ASCII", prefix, c)
			}
		}
		if strings.ContainsAny(prefix, "{}") {
			return fmt.Errorf("key prefix %q: '{' and '}' would move the store's keys to other hash slots", prefix)
		}
		o.prefix = prefix
		return nil
	}
}

// WithExpiry turns on Redis's own expiry as a safety net behind Cleanup,
// so that a deployment whose Cleanup never runs still does not grow
// without bound. Every write sets its record to expire at its ATime plus
// d (PEXPIREAT, an absolute time computed from the caller's ATime: the
// store still reads no clock), and sweeps a few index entries older than
// that from its shard (see the package documentation). Give d well above
// the manager's idle timeout, such as the timeout plus an hour: Redis
// compares the expiry with its own clock, so a Redis clock ahead of the
// application servers' by s ends sessions s early, and Redis deletes
// the record without the manager's say. d must be positive; by default
// records do not expire. Give every store over the same keys the same
// expiry: a write without it removes the expiry a write with it set.
func WithExpiry(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("expiry must be positive, got %v", d)
		}
		o.expiry = d
		return nil
	}
}

// WithCleanupBatch sets how many index entries one Cleanup script
// examines at most, from 1 to MaxCleanupBatch, default
// DefaultCleanupBatch. It bounds how long each script holds its Redis
// node, not how many records a Cleanup deletes.
func WithCleanupBatch(n int) Option {
	return func(o *options) error {
		if n < 1 || n > MaxCleanupBatch {
			return fmt.Errorf("cleanup batch must be between 1 and %d, got %d", MaxCleanupBatch, n)
		}
		o.batch = n
		return nil
	}
}

// WithClientCache keeps up to size bytes of session records in the
// process, so that loading a session the store read or wrote before costs
// no round trip: a read-only request then reaches Redis not at all, and a
// request that changes its session once. The cache subscribes to the
// changes every store over the same keys publishes (see the package
// documentation) and drops a record as soon as another store changes it;
// the subscription is pinged every quarter second, and the cache serves
// nothing while its last answer is a second old or older. A Load may thus
// miss another store's change of the last moments (typically well under a
// millisecond, at most a second): declare that as the conformance suite's
// Staleness. Writes always go to Redis, so a stale read can cost a
// request a conflict (and the manager a retry), never a lost update or a
// revived session.
//
// It needs a *redis.Client (one server, or a Sentinel failover client),
// Redis 6 or later, and a user allowed SUBSCRIBE on the store's change
// channel and CLIENT TRACKING; New fails otherwise. It cannot see keys
// changed behind the store's back (a DEL by hand, eviction under
// maxmemory), except flushes. size must be positive.
func WithClientCache(size int) Option {
	return func(o *options) error {
		if size <= 0 {
			return fmt.Errorf("client cache size must be positive, got %d", size)
		}
		o.cacheSize = size
		return nil
	}
}

// WithLogger sets where the store reports what it cannot return as an
// error (so far, a client cache's lost subscription, once per outage);
// slog.Default() by default.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("nil logger")
		}
		o.logger = l
		return nil
	}
}
