package disk

import (
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/fsnotify/fsnotify"
	session "github.com/websession/websession/core"
)

// cacheEntryOverhead approximates the memory of a cache entry beyond its
// key and data: the map slot, the entry and the record's times.
const cacheEntryOverhead = 128

// cache keeps decoded records in memory so that loading a session again
// costs no file I/O. One fsnotify watcher on the root and on each shard
// directory (never one per file) tells it when any process changes a file;
// the event evicts that key.
//
// An insertion must not outlive an eviction it raced with: a Load that read
// the old file, then saw the event evict the key, then inserted what it had
// read, would serve stale data until the next change. Each shard therefore
// has a generation, bumped by every eviction; Load notes it before reading
// the file and inserts only if it is unchanged.
type cache struct {
	s      *Store
	on     atomic.Bool // off: no watcher, watcher lost, or store closed
	budget int         // bytes per shard
	shards [numShards]cacheShard

	watcher *fsnotify.Watcher
	done    chan struct{} // closed when the event goroutine ends

	offOnce   sync.Once
	errLogged atomic.Bool
	drops     atomic.Int64 // how often the whole cache was dropped
}

type cacheShard struct {
	mu    sync.RWMutex
	m     map[string]cached
	gen   uint64
	bytes int
}

type cached struct {
	rec  session.Record // rec.Data is owned by the cache, never handed out
	size int
}

// init starts the watcher and turns the cache on, or leaves it off and
// says why, once.
func (c *cache) init(s *Store, size int) {
	c.s = s
	if size == 0 {
		return
	}
	w, err := newWatcher()
	if err == nil {
		err = w.Add(s.root)
		for i := 0; err == nil && i < numShards; i++ {
			err = w.Add(s.shards[i].dir)
		}
		if err != nil {
			w.Close()
		}
	}
	if err != nil {
		s.log.Warn("disk: cannot watch the session directory; running without the read cache",
			"dir", s.root, "err", err)
		return
	}
	c.budget = size / numShards
	for i := range c.shards {
		c.shards[i].m = make(map[string]cached)
	}
	c.watcher = w
	c.done = make(chan struct{})
	c.on.Store(true)
	go c.run()
}

// testHookEvent, if set, sees every event after the store handled it. The
// package's tests set it once, before any store exists, to learn when a
// watcher has caught up.
var testHookEvent func(*Store, fsnotify.Event)

// run consumes the watcher's events until it is closed. It only evicts:
// it never calls the watcher (fsnotify serves Add and Remove on the
// goroutine that delivers events, so calling them here could deadlock).
func (c *cache) run() {
	defer close(c.done)
	events, errs := c.watcher.Events, c.watcher.Errors
	for events != nil || errs != nil {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			c.event(ev)
			if testHookEvent != nil {
				testHookEvent(c.s, ev)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			c.watchError(err)
		}
	}
}

// watchError handles an error from the watcher. An overflow means events
// were lost; any other error may mean the same. Only dropping everything is
// safe. The first error is logged as a warning, later ones at debug level:
// a storm of overflows should not flood the log.
func (c *cache) watchError(err error) {
	c.dropAll()
	if !c.errLogged.Swap(true) {
		c.s.log.Warn("disk: file watcher error; read cache dropped", "dir", c.s.root, "err", err)
	} else {
		c.s.log.Debug("disk: file watcher error; read cache dropped", "dir", c.s.root, "err", err)
	}
}

// event evicts the key an event names. Events on temp and lock files are
// ignored; losing a watched directory turns the cache off for good, since
// changes inside it would go unseen.
func (c *cache) event(ev fsnotify.Event) {
	if ev.Op&^fsnotify.Chmod == 0 {
		return
	}
	root := c.s.root
	parent, base := filepath.Dir(ev.Name), filepath.Base(ev.Name)
	switch {
	case ev.Name == root:
		if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
			c.disable("the session directory was removed or renamed")
		}
	case parent == root:
		if isShardName(base) && (ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename)) {
			c.disable("a session subdirectory was removed or renamed")
		}
	case base[0] == '.':
		// Temp and lock files, whose events are most of the traffic.
	case filepath.Dir(parent) == root && isShardName(filepath.Base(parent)):
		if key, ok := keyOfName(base); ok {
			c.evict(shardOf(key), key)
		}
	}
}

func isShardName(name string) bool {
	isHex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	return len(name) == 2 && isHex(name[0]) && isHex(name[1])
}

// get returns a copy of the cached record of key, or the shard's
// generation to pass to put after reading the file.
func (c *cache) get(i int, key string) (session.Record, uint64, bool) {
	if !c.on.Load() {
		return session.Record{}, 0, false
	}
	sh := &c.shards[i]
	sh.mu.RLock()
	e, ok := sh.m[key]
	gen := sh.gen
	sh.mu.RUnlock()
	if !ok {
		return session.Record{}, gen, false
	}
	rec := e.rec
	rec.Data = clone(e.rec.Data)
	return rec, 0, true
}

// put caches a copy of rec, read from the file after get returned gen,
// unless an eviction happened since.
func (c *cache) put(i int, key string, gen uint64, rec session.Record) {
	if !c.on.Load() {
		return
	}
	size := len(rec.Data) + len(key) + cacheEntryOverhead
	if size > c.budget {
		return
	}
	rec.Data = clone(rec.Data)
	sh := &c.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen || !c.on.Load() {
		return
	}
	if old, ok := sh.m[key]; ok {
		sh.bytes -= old.size
		delete(sh.m, key)
	}
	// Over budget: evict arbitrary entries (map order is unspecified,
	// which makes this a cheap random eviction).
	for k, e := range sh.m {
		if sh.bytes+size <= c.budget {
			break
		}
		sh.bytes -= e.size
		delete(sh.m, k)
	}
	sh.m[key] = cached{rec: rec, size: size}
	sh.bytes += size
}

// evict forgets key. Writers call it after renaming, still holding the
// shard lock, so that this process reads its own writes at once.
func (c *cache) evict(i int, key string) {
	if c.watcher == nil {
		return
	}
	sh := &c.shards[i]
	sh.mu.Lock()
	if e, ok := sh.m[key]; ok {
		sh.bytes -= e.size
		delete(sh.m, key)
	}
	sh.gen++
	sh.mu.Unlock()
}

func (c *cache) dropAll() {
	if c.watcher == nil {
		return
	}
	c.drops.Add(1)
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		clear(sh.m)
		sh.bytes = 0
		sh.gen++
		sh.mu.Unlock()
	}
}

func (c *cache) disable(reason string) {
	c.on.Store(false)
	c.dropAll()
	c.offOnce.Do(func() {
		c.s.log.Warn("disk: read cache turned off: "+reason, "dir", c.s.root)
	})
}

// close stops the watcher and waits for the event goroutine.
func (c *cache) close() error {
	if c.watcher == nil {
		return nil
	}
	c.on.Store(false)
	err := c.watcher.Close()
	<-c.done
	c.dropAll()
	return err
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
