package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

// Shards is the number of access-time indexes a store spreads its records
// over. Each shard, its index and its records share one hash slot, so in
// a Redis Cluster the shards, and with them the sessions, spread over the
// nodes. It is part of the key layout: every store over the same keys
// must use the same number, hence a constant.
const Shards = 1024

// maxDataSize is the largest Data the store accepts, in bytes: Redis's
// default limit for one value (proto-max-bulk-len, 512 MiB) less room for
// the record's header. A server configured with a lower limit refuses
// larger records with an error. The manager's own default limit,
// session.DefaultMaxDataSize, is far smaller.
const maxDataSize = 512<<20 - 1024

// Store is a session.Store and session.OwnerIndex over Redis: a single
// server, a Sentinel-managed one, or a Redis Cluster. It is safe for
// concurrent use. Create it with New or Open.
type Store struct {
	client  redis.UniversalClient
	owned   bool // Open made client: Close closes it
	oneNode bool // every key on one server: owner sets join the records' scripts
	opts    options
	maxData int // maxDataSize; tests lower it

	recPrefix [Shards]string // "<prefix>r:{<shard>}:", then the key
	indexKey  [Shards]string // "<prefix>a:{<shard>}"

	// channel is where the scripts publish the changes they make, for
	// client caches (see cache.go): on one server only, "" on a Cluster.
	channel string
	cache   *clientCache // nil without WithClientCache

	closed atomic.Bool
}

var (
	_ session.Store              = (*Store)(nil)
	_ session.OwnerIndex         = (*Store)(nil)
	_ interface{ Close() error } = (*Store)(nil)
)

// New returns a Store over client, which stays the caller's: Close does
// not close it. client may be a *redis.Client (one server, or a Sentinel
// failover client), a *redis.ClusterClient or any other
// redis.UniversalClient. New checks the server at once: it sends a PING
// and loads the store's Lua scripts, and fails with the cause if either
// fails.
//
// Set ContextTimeoutEnabled in the client's options, as Open does, so
// that a request's deadline bounds the store's calls; otherwise go-redis
// applies only its own read and write timeouts.
func New(ctx context.Context, client redis.UniversalClient, opts ...Option) (*Store, error) {
	if client == nil {
		return nil, errors.New("redis: nil client")
	}
	return newStore(ctx, client, false, opts)
}

// Open connects to the server named by url, in the form go-redis's
// redis.ParseURL reads (redis://[[user]:password@]host[:port][/db], or
// rediss:// for TLS, with options such as ?dial_timeout=3s as query
// parameters), and returns a Store that owns the client: Close closes it.
// Open turns on ContextTimeoutEnabled, so that a call's context bounds
// it. For a Cluster or Sentinel, build the client yourself and use New.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: parse URL: %w", err)
	}
	o.ContextTimeoutEnabled = true
	c := redis.NewClient(o)
	s, err := newStore(ctx, c, true, opts)
	if err != nil {
		c.Close()
		return nil, err
	}
	return s, nil
}

func newStore(ctx context.Context, c redis.UniversalClient, owned bool, opts []Option) (*Store, error) {
	s := &Store{client: c, owned: owned, opts: defaultOptions(), maxData: maxDataSize}
	for _, opt := range opts {
		if opt == nil {
			return nil, fmt.Errorf("redis: new: nil Option")
		}
		if err := opt(&s.opts); err != nil {
			return nil, fmt.Errorf("redis: new: %w", err)
		}
	}
	_, s.oneNode = c.(*redis.Client)
	for i := range Shards {
		tag := "{" + strconv.Itoa(i) + "}"
		s.recPrefix[i] = s.opts.prefix + "r:" + tag + ":"
		s.indexKey[i] = s.opts.prefix + "a:" + tag
	}
	if err := c.Ping(ctx).Err(); err != nil {
		return nil, wrap(ctx, "ping", err)
	}
	if err := loadScripts(ctx, c); err != nil {
		return nil, wrap(ctx, "load scripts", err)
	}
	if one, ok := c.(*redis.Client); ok {
		s.channel = changeChannel(s.opts.prefix, one.Options().DB)
		// Every write publishes there: find out now if that is refused.
		if err := c.Publish(ctx, s.channel, "").Err(); err != nil {
			return nil, wrap(ctx, "publish on the change channel "+s.channel+" (the store's writes announce themselves there for client caches; grant the store's user that channel)", err)
		}
		if s.opts.cacheSize > 0 {
			log := s.opts.logger
			if log == nil {
				log = slog.Default()
			}
			cache, err := startCache(ctx, one, s.channel, s.opts.cacheSize, log)
			if err != nil {
				return nil, wrap(ctx, "client cache: subscribe to "+s.channel, err)
			}
			s.cache = cache
		}
	} else if s.opts.cacheSize > 0 {
		return nil, fmt.Errorf("redis: new: WithClientCache needs a *redis.Client (one server, or a Sentinel failover client), not a %T", c)
	}
	return s, nil
}

// pxat is the Unix millisecond at which Redis expires a record written at
// atime, or 0 without WithExpiry.
func (s *Store) pxat(atime time.Time) int64 {
	if s.opts.expiry == 0 {
		return 0
	}
	return unixMilli(atime.Add(s.opts.expiry))
}

// SyncCache waits until the client cache (WithClientCache) has applied
// every change any store published before the call, and with it this
// store's own writes, so that the next Load of a record written before it
// costs no round trip. It returns at once without a cache. Applications
// need not call it; tests that count round trips, or that must see another
// store's write at once rather than within the staleness bound, do.
func (s *Store) SyncCache(ctx context.Context) error {
	if s.cache == nil {
		return nil
	}
	if err := s.cache.sync(ctx); err != nil {
		return wrap(ctx, "sync cache", err)
	}
	return nil
}

// Client returns the client the store uses. Closing it is the job of
// whoever made it: the caller for New, the store's Close for Open.
func (s *Store) Client() redis.UniversalClient { return s.client }

// MaxDataSize returns the largest Data the store accepts: 512 MiB less
// 1 KiB (Redis's default proto-max-bulk-len less the record's header).
// Larger data is refused with an error wrapping
// session.ErrTooLarge, and nothing is written.
func (s *Store) MaxDataSize() int { return s.maxData }

// KeyPrefix returns the prefix of every key the store uses.
func (s *Store) KeyPrefix() string { return s.opts.prefix }

// Close makes every later call fail with an error wrapping
// session.ErrClosed, and closes the client if Open made it. Close is
// idempotent.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	if s.cache != nil {
		s.cache.close()
	}
	if !s.owned {
		return nil
	}
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("redis: close: %w", err)
	}
	return nil
}

// shardOf is the shard of a key: FNV-1a of its bytes, modulo Shards. The
// manager's keys are SHA-256 digests, so shards fill evenly.
func shardOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % Shards)
}

// begin checks what every keyed call checks before any I/O.
func (s *Store) begin(ctx context.Context, op, key string) error {
	if s.closed.Load() {
		return errClosed
	}
	if !session.ValidKey(key) {
		return invalidKey(op, "key")
	}
	return ctx.Err()
}

// checkRecord refuses what cannot be stored whole.
func (s *Store) checkRecord(op string, rec session.Record) error {
	if rec.Owner != "" && !session.ValidKey(rec.Owner) {
		return invalidKey(op, "owner")
	}
	if len(rec.Data) > s.maxData {
		return fmt.Errorf("redis: %s: %d bytes of session data, more than the %d this store holds: %w",
			op, len(rec.Data), s.maxData, session.ErrTooLarge)
	}
	return nil
}

// expiryArgs returns the PXAT and sweep-threshold arguments of a write at
// atime: both "" without WithExpiry.
func (s *Store) expiryArgs(atime time.Time) (pxat, sweep string) {
	if s.opts.expiry == 0 {
		return "", ""
	}
	return strconv.FormatInt(unixMilli(atime.Add(s.opts.expiry)), 10),
		strconv.FormatInt(score(atime.Add(-s.opts.expiry)), 10)
}

// reshardRetries bounds how often a call refused because of a Cluster's
// resharding is retried: with backoffs of 5, 10, 20, 40, 80 and then 100
// ms, about two seconds in all. While the hash slot of a shard migrates
// between two nodes, a script over a record and its shard's index is
// refused with TRYAGAIN as long as the keys are split between the nodes,
// and the slot's hand-over can bounce a command between them (ASK, MOVED)
// more often than the client follows. Each of these replies means the
// command did not run, so running it again is safe. The window lasts as
// long as the migration of one slot, which holds one shard: a thousandth
// of the sessions.
const reshardRetries = 24

// resharding reports a refusal of a command, which did not run, during a
// Cluster's resharding.
func resharding(err error) bool {
	if err == nil {
		return false
	}
	_, moved := redis.IsMovedError(err)
	_, ask := redis.IsAskError(err)
	return moved || ask || redis.IsTryAgainError(err)
}

// retry runs do again, after a call that was refused during resharding,
// until it returns an error other than such a refusal, up to
// reshardRetries times or until ctx ends.
func retry(ctx context.Context, do func() error) {
	backoff := 5 * time.Millisecond
	for range reshardRetries {
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if !resharding(do()) {
			return
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
}

// run runs script (EVALSHA, or EVAL if the node lacks it), retrying
// refusals during resharding (see retry).
func (s *Store) run(ctx context.Context, script *redis.Script, keys []string, args ...any) *redis.Cmd {
	cmd := script.Run(ctx, s.client, keys, args...)
	if resharding(cmd.Err()) {
		retry(ctx, func() error {
			cmd = script.Run(ctx, s.client, keys, args...)
			return cmd.Err()
		})
	}
	return cmd
}

// newToken returns a token for a new owner binding: random, so that two
// bindings of one session to one owner are told apart; never 0.
func newToken() uint64 { return rand.Uint64() | 1 }

// Load implements session.Store with one GET.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.begin(ctx, "load", key); err != nil {
		return session.Record{}, err
	}
	var mark cacheMark
	if s.cache != nil {
		if rec, ok := s.cache.get(key); ok {
			return rec, nil
		}
		mark = s.cache.mark()
	}
	rk := s.recPrefix[shardOf(key)] + key
	b, err := s.client.Get(ctx, rk).Bytes()
	if resharding(err) {
		retry(ctx, func() error {
			b, err = s.client.Get(ctx, rk).Bytes()
			return err
		})
	}
	if err == redis.Nil {
		return session.Record{}, session.ErrNotFound
	}
	if err != nil {
		return session.Record{}, wrap(ctx, "load", err)
	}
	// b is the reply's own buffer, which nothing else references: the
	// record's Data may alias it.
	rec, err := decode(b)
	if err != nil {
		return session.Record{}, fmt.Errorf("redis: load: %s: %w", rk, err)
	}
	if s.cache != nil {
		s.cache.fill(key, rec, s.pxat(rec.ATime), mark, fillRead)
	}
	return rec, nil
}

// Create implements session.Store with one script. With an owner, on a
// Cluster, a second command then records the session in its owner's set
// (see the package documentation).
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.begin(ctx, "create", key); err != nil {
		return err
	}
	if err := s.checkRecord("create", rec); err != nil {
		return err
	}
	var token uint64
	if rec.Owner != "" {
		token = newToken()
	}
	sh := shardOf(key)
	rk := s.recPrefix[sh] + key
	keys := []string{rk, s.indexKey[sh]}
	if rec.Owner != "" && s.oneNode {
		keys = append(keys, s.ownerKey(rec.Owner))
	}
	pxat, sweep := s.expiryArgs(rec.ATime)
	tok := versionBytes(token)
	var mark cacheMark
	if s.cache != nil {
		mark = s.cache.markWrite(key)
	}
	n, err := s.run(ctx, createScript, keys,
		encode(rec, 1, token), score(rec.ATime), key, pxat, sweep, tok, s.channel).Int64()
	if err != nil {
		return wrap(ctx, "create", err)
	}
	if n < 0 {
		return session.ErrExists
	}
	if s.cache != nil {
		s.cache.fill(key, session.Record{Data: rec.Data, ATime: rec.ATime, Created: rec.Created, Version: 1, Owner: rec.Owner}, s.pxat(rec.ATime), mark, fillWritten)
	}
	if rec.Owner == "" {
		return nil
	}
	if !s.oneNode {
		// The record first, then its owner's entry: a reader that finds an
		// entry without its record removes the entry, so the entry must not
		// come first. Until this returns, no one has the session's id.
		n, err = s.run(ctx, ownerAddScript, []string{s.ownerKey(rec.Owner)}, key, tok).Int64()
		if err != nil {
			// Take the record back: a session missing from its owner's set
			// must not be handed out. If this fails too, the record stays
			// unreachable (its id is never sent) until Cleanup or expiry.
			_ = s.run(ctx, deleteScript, []string{rk, s.indexKey[sh]}, key, s.channel).Err()
			s.forget(key)
			return wrap(ctx, "create: owner index", err)
		}
	}
	s.maybePrune(ctx, rec.Owner, n)
	return nil
}

// Update implements session.Store with one script: a compare-and-swap on
// the version. Changing the owner costs more on a Cluster (see the package
// documentation).
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.begin(ctx, "update", key); err != nil {
		return err
	}
	if err := s.checkRecord("update", rec); err != nil {
		return err
	}
	sh := shardOf(key)
	keys := []string{s.recPrefix[sh] + key, s.indexKey[sh]}
	mode := ownerNotAdded
	var token uint64
	if rec.Owner != "" {
		token = newToken()
		if s.oneNode {
			keys = append(keys, s.ownerKey(rec.Owner))
			mode = ownerInScript
		}
	}
	pxat, sweep := s.expiryArgs(rec.ATime)
	args := []any{versionBytes(rec.Version), encode(rec, rec.Version+1, token), score(rec.ATime), key, pxat, sweep, mode, s.channel}
	var mark cacheMark
	if s.cache != nil {
		mark = s.cache.markWrite(key)
	}
	res, err := s.run(ctx, updateScript, keys, args...).Slice()
	if err != nil {
		return wrap(ctx, "update", err)
	}
	if code(res) == updNeedsOwner {
		// A Cluster, and the owner changes: the new owner's entry first,
		// so that a crash between the two leaves at most an entry that
		// readers skip, never a session its owner cannot find.
		if err := s.run(ctx, ownerAddScript, []string{s.ownerKey(rec.Owner)}, key, versionBytes(token)).Err(); err != nil {
			return wrap(ctx, "update: owner index", err)
		}
		args[len(args)-2] = ownerAdded
		if res, err = s.run(ctx, updateScript, keys, args...).Slice(); err != nil {
			return wrap(ctx, "update", err)
		}
	}
	switch code(res) {
	case updNotFound:
		return session.ErrNotFound
	case updConflict:
		return session.ErrConflict
	case updDone:
	default:
		return fmt.Errorf("redis: update: unexpected reply %v", res)
	}
	if created, ok := res[2].(string); ok && len(created) == timeLen && s.cache != nil {
		s.cache.fill(key, session.Record{Data: rec.Data, ATime: rec.ATime, Created: getTime([]byte(created)),
			Version: rec.Version + 1, Owner: rec.Owner}, s.pxat(rec.ATime), mark, fillWritten)
	}
	if len(res) >= 5 {
		// The session left its old owner: drop that entry, if it is still
		// the one this record had. Failing leaves an entry that readers skip.
		old, _ := res[3].(string)
		oldToken, _ := res[4].(string)
		s.dropOwned(ctx, old, []string{key, oldToken})
	}
	if n, _ := res[1].(int64); n > 0 {
		s.maybePrune(ctx, rec.Owner, n)
	}
	return nil
}

// code is the status of a script's reply {code, ...}.
func code(res []any) int64 {
	if len(res) == 0 {
		return -1
	}
	c, _ := res[0].(int64)
	return c
}

// Touch implements session.Store with one script.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.begin(ctx, "touch", key); err != nil {
		return err
	}
	sh := shardOf(key)
	pxat, sweep := s.expiryArgs(atime)
	var (
		mark   cacheMark
		cached session.Record
		had    bool
	)
	if s.cache != nil {
		cached, had = s.cache.get(key)
		mark = s.cache.markWrite(key)
	}
	n, err := s.run(ctx, touchScript, []string{s.recPrefix[sh] + key, s.indexKey[sh]},
		timeBytes(atime), score(atime), key, pxat, sweep, s.channel).Int64()
	if err != nil {
		return wrap(ctx, "touch", err)
	}
	if n == 0 {
		return session.ErrNotFound
	}
	if had {
		// The record as touched, if the cached one was still current when
		// the script ran: not known here (an Update may have come in
		// between), so not as this store's own write, but as a record
		// that waits for the Touch's change message to bear its stamp.
		cached.ATime = atime
		s.cache.fill(key, cached, s.pxat(atime), mark, fillTouched)
	}
	return nil
}

// forget drops key from the client cache, after a deletion: its change
// message may come after this store's next Load. (Create, Update and Touch
// drop the key when they begin, in markWrite, and cache only what they
// know, whatever their outcome.)
func (s *Store) forget(key string) {
	if s.cache != nil {
		s.cache.drop(key)
	}
}

// Delete implements session.Store with one script; for a session with an
// owner, a second command removes it from its owner's set.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.begin(ctx, "delete", key); err != nil {
		return err
	}
	sh := shardOf(key)
	res, err := s.run(ctx, deleteScript, []string{s.recPrefix[sh] + key, s.indexKey[sh]}, key, s.channel).StringSlice()
	s.forget(key)
	if err != nil {
		return wrap(ctx, "delete", err)
	}
	if len(res) == 2 {
		s.dropOwned(ctx, res[0], []string{key, res[1]})
	}
	return nil
}
