package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	session "github.com/websession/websession/core"
)

// cachedPair returns a store with the client cache and a second store
// over the same keys (another application server), without one.
func cachedPair(t *testing.T, opts ...Option) (cached, other *Store) {
	t.Helper()
	c := newClient(t)
	prefix := uniquePrefix(t, c)
	open := func(o ...Option) *Store {
		s, err := New(testCtx(t), newClient(t), append([]Option{WithKeyPrefix(prefix)}, o...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return open(append([]Option{WithClientCache(1 << 20)}, opts...)...), open(opts...)
}

// eventually polls cond for up to the cache's staleness bound, the time
// within which the cache promises to see other stores' changes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(cacheStaleness)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s, still after %v: %v", what, cacheStaleness, err)
		}
		time.Sleep(time.Millisecond)
	}
}

func wantVersion(s *Store, key string, v uint64) func() error {
	return func() error {
		r, err := s.Load(context.Background(), key)
		if err != nil {
			return err
		}
		if r.Version != v {
			return errors.New("version " + strconv.FormatUint(r.Version, 10) + ", want " + strconv.FormatUint(v, 10))
		}
		return nil
	}
}

func wantGone(s *Store, key string) func() error {
	return func() error {
		if _, err := s.Load(context.Background(), key); !errors.Is(err, session.ErrNotFound) {
			return errors.New("Load = " + errString(err) + ", want ErrNotFound")
		}
		return nil
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// Loads of what the store read or wrote cost no round trip; writes cost
// their one, as without the cache.
func TestClientCacheRoundTrips(t *testing.T) {
	var rt roundTrips
	o, err := redis.ParseURL(testURL())
	if err != nil {
		t.Fatal(err)
	}
	o.Dialer, o.PoolSize = rt.dial, 1
	requireRedis(t)
	s := testStore(t, newClientWith(t, o), WithClientCache(1<<20))
	ctx := testCtx(t)
	measure := func(what string, want int64, f func() error) {
		t.Helper()
		before := rt.count()
		if err := f(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := rt.count() - before; got != want {
			t.Errorf("%s: %d round trips, want %d", what, got, want)
		}
	}
	load := func(key string, version uint64) func() error {
		return func() error {
			r, err := s.Load(ctx, key)
			if err == nil && r.Version != version {
				err = errors.New("version " + strconv.FormatUint(r.Version, 10))
			}
			return err
		}
	}
	r := rec("x", t0)
	measure("Create", 1, func() error { return s.Create(ctx, "k", r) })
	sync := func() {
		t.Helper()
		if err := s.SyncCache(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync()
	measure("Load after Create", 0, load("k", 1))
	r.Version = 1
	measure("Update", 1, func() error { return s.Update(ctx, "k", r) })
	sync()
	measure("Load after Update", 0, load("k", 2))
	measure("Touch", 1, func() error { return s.Touch(ctx, "k", t0.Add(time.Second)) })
	sync()
	measure("Load after Touch", 0, func() error {
		got, err := s.Load(ctx, "k")
		if err == nil && !got.ATime.Equal(t0.Add(time.Second)) {
			err = errors.New("ATime " + got.ATime.String())
		}
		return err
	})
	// Many writes in a row, each Loaded back at once, as a counter does:
	// a write's message may come after the next write began.
	for i := range 20 {
		r.Version = uint64(2 + i)
		if err := s.Update(ctx, "k", r); err != nil {
			t.Fatal(err)
		}
		if got := mustLoad(t, s, "k"); got.Version != r.Version+1 {
			t.Fatalf("Load right after Update #%d: version %d, want %d", i, got.Version, r.Version+1)
		}
	}
	sync()
	measure("Load after many", 0, load("k", 22))
	measure("Delete", 1, func() error { return s.Delete(ctx, "k") })
	measure("Load after Delete", 1, func() error {
		if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
			return errors.New("Load = " + errString(err))
		}
		return nil
	})
}

// Another store's Update, Touch, Delete and Cleanup reach the cache within
// its staleness bound; so does a write made while the cache's
// subscription was down.
func TestClientCacheSeesOtherStores(t *testing.T) {
	a, b := cachedPair(t)
	ctx := testCtx(t)
	mustCreate(t, b, "k", rec("x", t0))
	if got := mustLoad(t, a, "k"); got.Version != 1 {
		t.Fatalf("Load = version %d", got.Version)
	}
	r := rec("y", t0)
	r.Version = 1
	if err := b.Update(ctx, "k", r); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache serves a record another store updated", wantVersion(a, "k", 2))
	if err := b.Touch(ctx, "k", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache serves the ATime from before another store's Touch", func() error {
		if got := mustLoad(t, a, "k"); !got.ATime.Equal(t0.Add(time.Hour)) {
			return errors.New("ATime " + got.ATime.String())
		}
		return nil
	})
	// A's own write of a record B then deletes.
	r.Version = 2
	if err := a.Update(ctx, "k", r); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache serves a record another store deleted", wantGone(a, "k"))
	if err := a.Update(ctx, "k", r); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Update of the deleted record = %v, want ErrNotFound", err)
	}

	mustCreate(t, b, "old", rec("x", t0))
	mustLoad(t, a, "old")
	if _, err := b.Cleanup(ctx, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache serves a record another store's Cleanup deleted", wantGone(a, "old"))

	// The subscription's connection dies; B writes meanwhile.
	mustCreate(t, b, "gap", rec("x", t0))
	mustLoad(t, a, "gap")
	admin := newClient(t)
	if err := admin.ClientKillByFilter(ctx, "ID", strconv.FormatInt(a.cache.subID.Load(), 10)).Err(); err != nil {
		t.Fatal(err)
	}
	g := rec("y", t0)
	g.Version = 1
	if err := b.Update(ctx, "gap", g); err != nil {
		t.Fatal(err)
	}
	eventually(t, "after its subscription was lost, the cache serves a record updated meanwhile", wantVersion(a, "gap", 2))
	// And it caches again once subscribed again.
	eventually(t, "the cache is back after a lost subscription", func() error {
		if _, ok := a.cache.get("gap"); !ok {
			mustLoad(t, a, "gap")
			return errors.New("not served from the cache")
		}
		return nil
	})
}

// FLUSHDB and FLUSHALL empty every client cache.
func TestClientCacheSeesFlush(t *testing.T) {
	requireRedis(t)
	o, err := redis.ParseURL(testURL())
	if err != nil {
		t.Fatal(err)
	}
	o.DB = 13 // a database of this test's own: it is flushed
	s := testStore(t, newClientWith(t, o), WithClientCache(1<<20))
	mustCreate(t, s, "k", rec("x", t0))
	if _, ok := s.cache.get("k"); !ok {
		t.Fatal("a created record is not cached")
	}
	if err := s.client.FlushDB(testCtx(t)).Err(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the cache serves a record of a flushed database", wantGone(s, "k"))
	mustCreate(t, s, "k", rec("x", t0))
	if _, ok := s.cache.get("k"); !ok {
		t.Error("after a flush, the cache caches nothing any more")
	}
}

// The cache serves nothing once its subscription has been silent for the
// staleness bound: it could be missing changes.
func TestClientCacheStopsServingWhenSilent(t *testing.T) {
	s := testStore(t, newClient(t), WithClientCache(1<<20))
	mustCreate(t, s, "k", rec("x", t0))
	if _, ok := s.cache.get("k"); !ok {
		t.Fatal("a created record is not cached")
	}
	s.cache.alive.Store(time.Now().Add(-cacheStaleness).UnixNano())
	if _, ok := s.cache.get("k"); ok {
		t.Error("served from a cache whose last pong is as old as the staleness bound")
	}
	eventually(t, "the next pong brings the cache back", func() error {
		if _, ok := s.cache.get("k"); !ok {
			return errors.New("not served")
		}
		return nil
	})
}

// A record read or written while a change of its key came in is cached
// only if that change is the record's own.
func TestClientCacheFillRules(t *testing.T) {
	c := &clientCache{budget: 1 << 20, live: true, entries: map[string]*cacheEntry{}, changes: map[string]*keyChange{}, pending: map[string]*cacheEntry{}, writing: map[string]uint64{}}
	c.alive.Store(time.Now().UnixNano())
	r := rec("x", t0)
	r.Version = 3
	msg := func(r session.Record, key string) string { st := stampOf(r); return "S" + string(st[:]) + key }
	cached := func(key string) bool { _, ok := c.get(key); return ok }

	m := c.mark()
	c.apply(msg(r, "own"))
	c.fill("own", r, 0, m, fillRead)
	if !cached("own") {
		t.Error("a record whose own change came in meanwhile is not cached")
	}

	m = c.mark()
	other := r
	other.Version = 4
	c.apply(msg(other, "k"))
	c.fill("k", r, 0, m, fillRead)
	if cached("k") {
		t.Error("cached a record another change superseded meanwhile")
	}

	c.fill("gone", r, 0, c.mark(), fillRead)
	m = c.mark()
	c.apply("Dgone x y")
	c.apply(msg(r, "gone")) // deleted, then created again with the same stamp
	c.fill("gone", r, 0, m, fillRead)
	if cached("gone") {
		t.Error("cached a record deleted meanwhile")
	}

	// A late message of an earlier write: the fill is refused, and the
	// entry it would have replaced is dropped, not left to be served.
	c.fill("late", r, 0, c.mark(), fillRead)
	m = c.mark()
	older := r
	older.Version = 2
	c.apply(msg(older, "late"))
	c.fill("late", other, 0, m, fillRead)
	if cached("late") {
		t.Error("served a record before its own change came, in place of the entry it replaced")
	}
	c.apply(msg(other, "late"))
	if !cached("late") {
		t.Error("a record waiting for its own change is not cached once it comes")
	}
	c.apply(msg(r, "late"))
	if cached("late") {
		t.Error("a record is still served after a later change")
	}

	// A deletion cancels a record waiting for its change: a record made
	// after the deletion could bear the same stamp.
	m = c.mark()
	c.apply(msg(older, "del"))
	c.fill("del", other, 0, m, fillRead)
	c.apply("Ddel")
	c.apply(msg(other, "del"))
	if cached("del") {
		t.Error("a record waiting for its change across a deletion was cached")
	}

	// This store's own write, with an earlier write's message late: the
	// record is the latest known, cached at once; messages before its own
	// come from earlier writes and leave it; its own message settles it,
	// and any later change drops it.
	m = c.mark()
	c.apply(msg(older, "mine"))
	c.fill("mine", other, 0, m, fillWritten)
	if !cached("mine") {
		t.Error("this store's write is not cached while an earlier write's message came late")
	}
	c.apply(msg(r, "mine"))
	if !cached("mine") {
		t.Error("an earlier write's message, before the write's own, dropped the written record")
	}
	c.apply(msg(other, "mine"))
	c.apply(msg(r, "mine"))
	if cached("mine") {
		t.Error("a change after the write's own message left the written record cached")
	}
	c.fill("mine2", other, 0, c.mark(), fillWritten)
	c.apply("Dmine2")
	if cached("mine2") {
		t.Error("a deletion left a written record awaiting its message cached")
	}

	// A record this store touched waits for the Touch's own message, which
	// carries the version touched: an earlier write's late message leaves
	// it waiting, its own makes it an entry, and a Touch that found
	// another version (an Update came between the read and the Touch)
	// never makes one.
	touched := r
	touched.ATime = t0.Add(time.Hour)
	c.fill("t", touched, 0, c.mark(), fillTouched)
	if cached("t") {
		t.Error("a touched record is served before the Touch's message came")
	}
	c.apply(msg(older, "t"))
	c.apply(msg(touched, "t"))
	if !cached("t") {
		t.Error("a touched record is not cached once the Touch's message came")
	}
	c.fill("t2", touched, 0, c.mark(), fillTouched)
	other2 := touched
	other2.Version = 9
	c.apply(msg(other2, "t2"))
	if cached("t2") {
		t.Error("a touched record was cached although the Touch's message names another version")
	}

	// A call whose key a later write of this store began to change while
	// it ran does not cache what it read or wrote.
	m = c.mark()
	later := c.markWrite("raced")
	c.fill("raced", r, 0, m, fillRead)
	if cached("raced") {
		t.Error("a Load's record was cached although a write of the key began after the Load")
	}
	first := c.markWrite("raced2")
	c.markWrite("raced2")
	c.fill("raced2", r, 0, first, fillWritten)
	if cached("raced2") {
		t.Error("a write's record was cached although a later write of the key began before it finished")
	}
	c.fill("raced", other, 0, later, fillWritten)
	if !cached("raced") {
		t.Error("the later write's record is not cached")
	}

	// More changes than the cache remembers: not cached.
	m = c.mark()
	for i := range recentChanges {
		c.apply("Dn" + strconv.Itoa(i))
	}
	c.fill("many", r, 0, m, fillRead)
	if cached("many") {
		t.Error("cached a record across more changes than the cache remembers")
	}
	if len(c.changes) > recentChanges {
		t.Errorf("the cache remembers %d keys' changes, more than %d", len(c.changes), recentChanges)
	}

	// An epoch change (flush, lost subscription) refuses earlier fills.
	m = c.mark()
	c.reset(true)
	c.fill("epoch", r, 0, m, fillRead)
	if cached("epoch") {
		t.Error("cached a record read before the cache was emptied")
	}

	// Redis's expiry bounds an entry's life.
	c.fill("exp", r, time.Now().Add(-time.Millisecond).UnixMilli(), c.mark(), fillRead)
	if cached("exp") {
		t.Error("served a record past its Redis expiry")
	}
}

// The cache needs the change channel of one server.
func TestClientCacheRefusedOnCluster(t *testing.T) {
	c := newClient(t)
	_, err := New(testCtx(t), multiStep{c}, WithKeyPrefix(uniquePrefix(t, c)), WithClientCache(1<<20))
	if err == nil || !strings.Contains(err.Error(), "WithClientCache needs a *redis.Client") {
		t.Errorf("New with a client cache over a non-*redis.Client = %v", err)
	}
	if _, err := New(testCtx(t), c, WithClientCache(0)); err == nil {
		t.Error("WithClientCache(0) accepted")
	}
	if _, err := New(testCtx(t), c, WithLogger(nil)); err == nil || !strings.Contains(err.Error(), "nil logger") {
		t.Errorf("WithLogger(nil) = %v", err)
	}
}

// A private server stopped and started again, empty (no persistence),
// under a store with the client cache: once the subscription notices, the
// cache serves nothing; it reports the loss once, not at every attempt to
// reconnect; and after the restart it does not serve the records the
// server lost.
func TestClientCacheAcrossRestart(t *testing.T) {
	requireBinaries(t)
	n := &node{port: freePort(), dir: t.TempDir()}
	start := func() {
		t.Helper()
		if err := n.start("--appendonly", "no"); err != nil {
			t.Fatal(err)
		}
	}
	start()
	t.Cleanup(n.kill)
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(b)
	}), nil))
	c := redis.NewClient(&redis.Options{Addr: n.addr(), ContextTimeoutEnabled: true, MaxRetries: 1})
	t.Cleanup(func() { c.Close() })
	s, err := New(testCtx(t), c, WithClientCache(1<<20), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	mustCreate(t, s, "k", rec("x", t0))
	if _, ok := s.cache.get("k"); !ok {
		t.Fatal("a created record is not cached")
	}

	n.kill()
	eventually(t, "with the server down, the cache still serves", func() error {
		if _, err := s.Load(context.Background(), "k"); err == nil {
			return errors.New("Load succeeded")
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // many attempts to subscribe again
	start()
	eventually(t, "after a restart that lost the record, the cache serves it", wantGone(s, "k"))
	mu.Lock()
	defer mu.Unlock()
	if got := strings.Count(logs.String(), "subscription lost"); got != 1 {
		t.Errorf("the lost subscription was reported %d times, want once:\n%s", got, logs.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// Three stores over the same keys, two with the client cache, race
// Creates, Updates, Touches and Deletes on a few keys from several
// goroutines. Whatever interleaving happened, once every cache has applied
// what was published, each store loads exactly what Redis holds: no cache
// keeps a record another write replaced or removed.
func TestClientCacheConvergesUnderRacingWrites(t *testing.T) {
	c := newClient(t)
	prefix := uniquePrefix(t, c)
	var stores []*Store
	for _, opts := range [][]Option{{WithClientCache(1 << 20)}, {WithClientCache(1 << 20)}, nil} {
		s, err := New(testCtx(t), newClient(t), append([]Option{WithKeyPrefix(prefix)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	keys := []string{"k0", "k1", "k2", "k3"}
	ctx := testCtx(t)
	for round := range 5 {
		var wg sync.WaitGroup
		for g := range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(round), uint64(g)))
				for i := range 300 {
					s := stores[rng.IntN(len(stores))]
					key := keys[rng.IntN(len(keys))]
					at := t0.Add(time.Duration(round*10000+g*1000+i) * time.Millisecond)
					switch op := rng.IntN(10); {
					case op < 2:
						_ = s.Create(ctx, key, rec(fmt.Sprintf("c%d.%d.%d", round, g, i), at))
					case op < 7:
						cur, err := s.Load(ctx, key)
						if err != nil {
							continue
						}
						cur.Data, cur.ATime = []byte(fmt.Sprintf("u%d.%d.%d", round, g, i)), at
						_ = s.Update(ctx, key, cur) // a conflict is fine: a stale read was refused
					case op < 9:
						_ = s.Touch(ctx, key, at)
					default:
						_ = s.Delete(ctx, key)
					}
				}
			}()
		}
		wg.Wait()
		for _, s := range stores {
			if err := s.SyncCache(ctx); err != nil {
				t.Fatal(err)
			}
		}
		truth := stores[2]
		for _, key := range keys {
			want, werr := truth.Load(ctx, key)
			for i, s := range stores[:2] {
				got, err := s.Load(ctx, key)
				if errors.Is(werr, session.ErrNotFound) != errors.Is(err, session.ErrNotFound) ||
					got.Version != want.Version || !got.ATime.Equal(want.ATime) || string(got.Data) != string(want.Data) {
					t.Fatalf("round %d, %s: cached store %d loads version %d %q at %v (err %v); Redis holds version %d %q at %v (err %v)",
						round, key, i, got.Version, got.Data, got.ATime, err, want.Version, want.Data, want.ATime, werr)
				}
			}
		}
	}
}
