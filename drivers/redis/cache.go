package redisstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

// The client cache (WithClientCache) keeps records in this process so that
// a Load of a session it holds costs no round trip, and stays coherent
// with every other store over the same keys through the change channel:
// on one server, every script that changes records publishes what it
// changed (see scripts.go), in the order the scripts ran, and each cache
// subscribes.
//
//   - An entry is a decoded record with its stamp: its Version and ATime
//     bytes as stored. A change message names a key and its new stamp (or
//     that it is gone): an entry whose stamp differs is dropped. A store's
//     own write publishes the stamp of the record that store then caches,
//     so its own messages leave its entries in place, while any other
//     write of the key, by any store, drops them. Redis delivers a
//     publication to its subscribers one by one and never merges two, so
//     no other write can hide behind one of ours.
//   - A record read (GET) or written by this store is cached only if no
//     message since the call began contradicts it: the latest change of
//     the key since then, if any, must have its stamp, and no deletion of
//     the key may be among them. Changes are remembered per key for the
//     last recentChanges key changes; a call that spans more is not
//     cached.
//   - Messages arrive a little after the write that sent them: a Load
//     served from the cache may miss the last fraction of a millisecond of
//     other stores' writes. To bound that even when the subscription
//     stalls unnoticed, the subscriber pings every cachePing, and the cache
//     serves only while the last pong answers a ping sent less than
//     staleness ago (pongs follow the messages published before the ping).
//     Writes never use the cache: Update's compare-and-swap and Create's
//     existence check run in Redis, so a stale read can cost a request a
//     conflict, never a lost update or a revived session.
//   - The subscription's connection also tracks the server's flushes
//     (CLIENT TRACKING BCAST on a prefix no key has: FLUSHDB and FLUSHALL
//     notify every tracking client). A flush, a lost or new subscription
//     and a failed write empty the cache, or drop the key.
//
// What the cache cannot see: a key deleted or changed behind the store's
// back by another client (a DEL by hand), or removed by Redis itself
// (eviction under maxmemory; an expiry set by WithExpiry is honoured, the
// entry is served only until it). Such a record stays served until its
// entry is evicted for room or the cache is emptied.

// cacheStaleness is how old a cached read may be at most: the bound on how
// long the subscription may fall silent before the cache stops serving.
var cacheStaleness = time.Second // a variable for the tests

// cachePing is how often the subscriber proves its connection alive.
var cachePing = cacheStaleness / 4 // a variable for the tests

// recentChanges is how many key changes the cache remembers to decide
// whether a record read or written meanwhile may be cached.
const recentChanges = 1 << 14

// cacheEntryOverhead approximates an entry's memory beyond key and data.
const cacheEntryOverhead = 160

// trackingPrefix is the CLIENT TRACKING prefix of the subscription's
// connection: no key starts with a NUL byte, so it reports flushes only.
const trackingPrefix = "\x00websession-flushes-only"

type stamp [offCreated - offVersion]byte

type cacheEntry struct {
	rec   session.Record // rec.Data belongs to the cache, never handed out
	stamp stamp
	pxat  int64 // Redis's expiry of the record, Unix ms; 0 for none
	size  int
	born  int64 // Unix ns of the fill, for pending entries
	// awaiting: this store wrote the record, and the write's own change
	// message has not come yet. Until it does, every message comes from
	// an earlier write, which does not contradict the record.
	awaiting bool
}

// keyChange is what the cache remembers of a key's last changes.
type keyChange struct {
	last     [keyHistory]change // by seq, newest at last[(n-1)%keyHistory]
	n        int
	lastRing uint64 // seq of the key's newest slot in the ring
}

type change struct {
	seq   uint64
	stamp stamp
	gone  bool
}

// keyHistory is how many changes of one key the cache remembers.
const keyHistory = 4

// maxPending bounds the fills waiting for their own change message.
const maxPending = 4096

// cacheMark is the cache's state when a call began, for fill.
type cacheMark struct{ seq, epoch, write uint64 }

// maxWriting bounds the writes remembered in writing.
const maxWriting = 1 << 16

type clientCache struct {
	budget  int
	channel string
	log     *slog.Logger
	sub     *redis.PubSub
	client  *redis.Client // the subscription's own client (closed by close)
	stop    context.CancelFunc
	done    sync.WaitGroup

	// alive is the Unix ns of the ping whose pong came last: every change
	// published before it has been applied.
	alive atomic.Int64
	subID atomic.Int64 // the subscription connection's CLIENT ID

	mu      sync.Mutex
	live    bool   // subscribed: messages flow
	epoch   uint64 // bumped when messages may have been missed
	seq     uint64 // key changes applied
	entries map[string]*cacheEntry
	bytes   int
	changes map[string]*keyChange
	// pending holds fills whose own change message has not come yet: the
	// record becomes an entry when it does (see fill).
	pending map[string]*cacheEntry
	// writes counts this store's writes begun; writing holds, per key,
	// the number of the last one begun, so that a call's fill loses to a
	// write of the same key that began after the call.
	writes  uint64
	writing map[string]uint64
	ring    [recentChanges]string // the keys of the last changes, by seq
}

// startCache subscribes to the store's change channel on a connection of
// its own and waits for the subscription, so that New fails if it cannot
// be made.
func startCache(ctx context.Context, base *redis.Client, channel string, size int, log *slog.Logger) (*clientCache, error) {
	c := &clientCache{
		budget:  size,
		channel: channel,
		log:     log,
		entries: make(map[string]*cacheEntry),
		changes: make(map[string]*keyChange),
		pending: make(map[string]*cacheEntry),
		writing: make(map[string]uint64),
	}
	o := *base.Options()
	userHook := o.OnConnect
	// RESP2, so that the server's flush notices arrive as messages of the
	// __redis__:invalidate channel on this very connection.
	o.Protocol = 2
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns = 1, 0, 0
	o.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		if userHook != nil {
			if err := userHook(ctx, cn); err != nil {
				return err
			}
		}
		id, err := cn.ClientID(ctx).Result()
		if err != nil {
			return err
		}
		c.subID.Store(id)
		return cn.Do(ctx, "CLIENT", "TRACKING", "ON", "REDIRECT", id, "BCAST", "PREFIX", trackingPrefix).Err()
	}
	c.client = redis.NewClient(&o)
	c.sub = c.client.Subscribe(ctx, channel, "__redis__:invalidate")
	for subscribed := 0; subscribed < 2; {
		msg, err := c.sub.Receive(ctx)
		if err != nil {
			c.sub.Close()
			c.client.Close()
			return nil, err
		}
		if _, ok := msg.(*redis.Subscription); ok {
			subscribed++
		}
	}
	c.live = true
	c.alive.Store(time.Now().UnixNano())
	runCtx, stop := context.WithCancel(context.Background())
	c.stop = stop
	c.done.Add(2)
	go c.receive(runCtx)
	go c.ping(runCtx)
	return c, nil
}

func (c *clientCache) close() {
	c.stop()
	c.sub.Close()
	c.client.Close()
	c.done.Wait()
}

// ping sends a ping every cachePing, carrying its send time, which the
// pong brings back to receive.
func (c *clientCache) ping(ctx context.Context) {
	defer c.done.Done()
	t := time.NewTicker(cachePing)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			pctx, cancel := context.WithTimeout(ctx, cacheStaleness)
			_ = c.sub.Ping(pctx, strconv.FormatInt(time.Now().UnixNano(), 10))
			cancel()
		}
	}
}

// sync waits until every change published before it was called has been
// applied: until the pong of a ping sent since.
func (c *clientCache) sync(ctx context.Context) error {
	t := time.Now().UnixNano()
	if err := c.sub.Ping(ctx, strconv.FormatInt(t, 10)); err != nil {
		return err
	}
	for c.alive.Load() < t {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Microsecond):
		}
	}
	return nil
}

// receive applies the subscription's messages until the cache closes.
func (c *clientCache) receive(ctx context.Context) {
	defer c.done.Done()
	for {
		msg, err := c.sub.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		switch m := msg.(type) {
		case *redis.Message:
			if m.Channel == c.channel {
				c.apply(m.Payload)
			} else {
				// A tracking notice: on this prefix, only flushes.
				c.reset(true)
			}
		case *redis.Subscription:
			// (Re)subscribed, after a lost connection: whatever was
			// published meanwhile is lost.
			if m.Kind == "subscribe" && m.Channel == c.channel {
				c.reset(true)
			}
		case *redis.Pong:
			if t, err := strconv.ParseInt(m.Payload, 10, 64); err == nil && t > c.alive.Load() {
				c.alive.Store(t)
			}
		}
		if err != nil {
			// A flush notice has a null payload, which go-redis reports as
			// an error of its own ("unsupported pubsub message payload")
			// on a connection that stays subscribed. Any other error
			// loses the subscription until go-redis subscribes again.
			flush := errors.Is(err, redis.Nil) || strings.Contains(err.Error(), "pubsub message payload")
			if wasLive := c.reset(flush); !flush {
				if wasLive {
					// Once per outage, not once per attempt to reconnect.
					c.log.Warn("redis: client cache: subscription lost; serving no cached record until it is back", "err", err)
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}
}

// reset empties the cache and refuses fills begun before it; live says
// whether it may serve again (the subscription holds). It reports whether
// the cache was live before.
func (c *clientCache) reset(live bool) (wasLive bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	wasLive = c.live
	c.live = live
	c.epoch++
	clear(c.entries)
	clear(c.pending)
	clear(c.writing) // every fill in flight is refused by the epoch
	c.bytes = 0
	return wasLive
}

// apply applies one change message.
func (c *clientCache) apply(msg string) {
	if len(msg) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch msg[0] {
	case 'S':
		if len(msg) < 1+len(stamp{}) {
			return
		}
		var st stamp
		copy(st[:], msg[1:])
		c.change(msg[1+len(st):], st, false)
	case 'D':
		rest := msg[1:]
		for len(rest) > 0 {
			i := strings.IndexByte(rest, ' ')
			key := rest
			if i >= 0 {
				key, rest = rest[:i], rest[i+1:]
			} else {
				rest = ""
			}
			c.change(key, stamp{}, true)
		}
	}
}

// change records one key's change, drops a contradicted entry and turns
// a pending fill into an entry when its own change comes. The caller
// holds mu.
func (c *clientCache) change(key string, st stamp, gone bool) {
	c.seq++
	slot := &c.ring[c.seq%recentChanges]
	if old := *slot; old != "" {
		if kc := c.changes[old]; kc != nil && kc.lastRing == c.seq-recentChanges {
			delete(c.changes, old) // its newest change leaves the window
		}
	}
	*slot = key
	kc := c.changes[key]
	if kc == nil {
		kc = new(keyChange)
		c.changes[key] = kc
	}
	kc.last[kc.n%keyHistory] = change{seq: c.seq, stamp: st, gone: gone}
	kc.n++
	kc.lastRing = c.seq
	if e := c.entries[key]; e != nil {
		switch {
		case gone:
			c.remove(key, e)
		case e.stamp == st:
			e.awaiting = false
		case !e.awaiting:
			c.remove(key, e)
		}
	}
	// Messages come in the order the writes ran: the write that made a
	// pending record has just run if its stamp comes, and whatever came
	// before ran earlier, so it does not contradict the record.
	// A deletion cancels it: a record made after it could bear the same
	// stamp.
	if p := c.pending[key]; p != nil && (gone || p.stamp == st) {
		delete(c.pending, key)
		if !gone {
			c.insert(key, p)
		}
	}
}

func (c *clientCache) remove(key string, e *cacheEntry) {
	c.bytes -= e.size
	delete(c.entries, key)
}

// serving reports whether cached records may be served now.
func (c *clientCache) serving() bool {
	return time.Now().UnixNano()-c.alive.Load() < int64(cacheStaleness)
}

// get returns a copy of key's cached record.
func (c *clientCache) get(key string) (session.Record, bool) {
	if !c.serving() {
		return session.Record{}, false
	}
	c.mu.Lock()
	e := c.entries[key]
	ok := c.live && e != nil && (e.pxat == 0 || time.Now().UnixMilli() < e.pxat)
	var rec session.Record
	if ok {
		rec = e.rec
	}
	c.mu.Unlock()
	if !ok {
		return session.Record{}, false
	}
	rec.Data = bytes.Clone(rec.Data)
	if rec.Data == nil {
		rec.Data = []byte{}
	}
	return rec, true
}

// mark returns the state to pass to fill after the call.
func (c *clientCache) mark() cacheMark {
	c.mu.Lock()
	defer c.mu.Unlock()
	return cacheMark{seq: c.seq, epoch: c.epoch, write: c.writes}
}

// markWrite is mark for a call that writes key: it also drops key's
// entry, which the write makes stale whatever its outcome.
func (c *clientCache) markWrite(key string) cacheMark {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.remove(key, e)
	}
	delete(c.pending, key)
	if len(c.writing) >= maxWriting {
		// Forget them all, and refuse every fill in flight instead.
		clear(c.writing)
		c.epoch++
	}
	c.writes++
	c.writing[key] = c.writes
	return cacheMark{seq: c.seq, epoch: c.epoch, write: c.writes}
}

// fill caches rec, read or written by a call that began at m, as of the
// change message of the write that made it (stamps tell):
//
//   - With no change of the key since m, or that write's message the
//     latest since, rec is current: it is cached.
//   - If that message came and another change followed, or a deletion
//     came since m (after which a new record could bear the same stamp),
//     rec is not cached.
//   - Otherwise the message is still to come. If this store wrote rec
//     whole (fillWritten: after m, so its message is certainly still to
//     come), rec is the latest state known: it is cached awaiting its
//     message (see change). A record read (fillRead) waits in pending
//     until its message comes, since that message may also have come
//     before m and been superseded.
//   - A record this store touched (fillTouched) is known only if no other
//     write came between the read it was cached from and the Touch, which
//     only the Touch's own message tells (its stamp carries the version
//     touched): it always waits in pending for that message.
//
// Whatever happens, the key's previous entry is dropped: it must not
// shadow what the call read or wrote. rec.Data is copied.
func (c *clientCache) fill(key string, rec session.Record, pxat int64, m cacheMark, kind fillKind) {
	st := stampOf(rec)
	size := len(key) + len(rec.Data) + len(rec.Owner) + cacheEntryOverhead
	rec.Data = bytes.Clone(rec.Data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.remove(key, e)
	}
	delete(c.pending, key)
	if w, ok := c.writing[key]; ok {
		if w > m.write {
			return // a write of key began after this call did
		}
		if w == m.write {
			delete(c.writing, key) // this call's own
		}
	}
	if size > c.budget || !c.live || c.epoch != m.epoch || c.seq-m.seq >= recentChanges {
		return
	}
	e := &cacheEntry{rec: rec, stamp: st, pxat: pxat, size: size}
	kc := c.changes[key]
	if kc == nil || kc.last[(kc.n-1)%keyHistory].seq <= m.seq {
		if kind == fillTouched {
			c.addPending(key, e)
			return
		}
		e.awaiting = kind == fillWritten
		c.insert(key, e)
		return
	}
	// Changes since m, newest first.
	seen, itsOwn := 0, false
	for i := kc.n - 1; i >= 0 && i >= kc.n-keyHistory; i-- {
		ch := kc.last[i%keyHistory]
		if ch.seq <= m.seq {
			break
		}
		seen++
		if ch.gone {
			return
		}
		if ch.stamp == st {
			if seen > 1 {
				return // its message came, and another change after it
			}
			itsOwn = true
		}
	}
	// Whether every change since m is known.
	complete := seen < keyHistory && seen < kc.n || kc.n <= keyHistory && seen == kc.n
	switch {
	case itsOwn:
		c.insert(key, e)
	case !complete:
	case kind == fillWritten:
		e.awaiting = true
		c.insert(key, e)
	default:
		c.addPending(key, e)
	}
}

// fillKind says how a call came by the record it fills the cache with.
type fillKind int

const (
	fillRead    fillKind = iota // read from Redis (Load)
	fillWritten                 // written whole by this store (Create, Update)
	fillTouched                 // a cached record this store touched
)

// addPending makes e wait for its own change message. The caller holds mu.
func (c *clientCache) addPending(key string, e *cacheEntry) {
	e.born = time.Now().UnixNano()
	if len(c.pending) >= maxPending {
		for k, p := range c.pending {
			if e.born-p.born > int64(cacheStaleness) {
				delete(c.pending, k)
			}
		}
	}
	if len(c.pending) < maxPending {
		c.pending[key] = e
	}
}

// insert adds e as key's entry, evicting others over the budget. The
// caller holds mu.
func (c *clientCache) insert(key string, e *cacheEntry) {
	if old := c.entries[key]; old != nil {
		c.remove(key, old)
	}
	// Over budget: evict arbitrary entries (map order is unspecified).
	for k, old := range c.entries {
		if c.bytes+e.size <= c.budget {
			break
		}
		c.remove(k, old)
	}
	c.entries[key] = e
	c.bytes += e.size
}

// drop forgets key.
func (c *clientCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e := c.entries[key]; e != nil {
		c.remove(key, e)
	}
	delete(c.pending, key)
}

// stampOf is rec's stamp as its record stores it.
func stampOf(rec session.Record) stamp {
	var st stamp
	copy(st[:], versionBytes(rec.Version))
	putTime(st[offATime-offVersion:], rec.ATime)
	return st
}

// changeChannel is the channel of the stores over the keys of prefix in
// database db.
func changeChannel(prefix string, db int) string {
	return fmt.Sprintf("%schanges:%d", prefix, db)
}
