package disk

import (
	"io"
	"sync"
	"sync/atomic"

	session "github.com/websession/websession/core"
)

// cacheEntryOverhead approximates the memory of a cache entry beyond its
// key and data: the map slot, the entry and the record's times.
const cacheEntryOverhead = 128

// cache keeps decoded records in memory so that loading a session again
// costs no file I/O. One inotify watch on the root and on each shard
// directory (never one per file) tells it when any process renames a
// session file into place or removes one; such an event evicts that key.
//
// A store's own writes keep their record cached: the writer stores it
// while it still holds the shard's lock. The events of that write must
// then not evict it, or every write would cost the next request a file
// read. They are told apart by name, not by file identity (inodes are
// reused): each store writes through spare files named after its own
// random token, and inotify pairs the two halves of a rename by a cookie,
// so a rename whose other half is this store's spare is this store's own
// write. An event whose other half is anything else, or is unknown
// (another process's spare, a temp file, a rename out of the tree, a
// batch that ends between the two halves), evicts. This is sound because
// the shard's lock orders all writers of a file: another process's write
// after ours comes later in the event queue than ours and evicts what we
// stored; a write before ours is superseded by what we stored.
//
// An insertion by Load must not outlive an eviction it raced with: a Load
// that read the old file, then saw the event evict the key, then inserted
// what it had read, would serve stale data until the next change. Each
// shard therefore has a generation, bumped by every eviction and every
// store; Load notes it before reading the file and inserts only if it is
// unchanged.
type cache struct {
	s      *Store
	on     atomic.Bool // off: no watcher, watcher lost, or store closed
	budget int         // bytes per shard
	shards [numShards]cacheShard

	// enabled is set, before the watcher starts, if it is to run; the
	// watcher's goroutine reads it, so it never changes afterwards.
	enabled bool
	watcher io.Closer

	// ours holds the cookies of renames out of this store's spares whose
	// other half has not been seen yet. Only the watcher goroutine uses it.
	ours map[uint32]struct{}

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

// dirEvent is one inotify event on a watched directory.
type dirEvent struct {
	op     evOp
	shard  int // the shard directory, -1 for the root, -2 unknown
	name   string
	cookie uint32
}

type evOp uint8

const (
	evMovedFrom evOp = iota + 1
	evMovedTo
	evDeleted
	evDirGone  // a watched directory was removed, moved or unmounted
	evOverflow // events were lost
)

// startWatch starts the watcher; the package's tests replace it to
// simulate a system where no watcher can start.
var startWatch = startInotify

// init starts the watcher and turns the cache on, or leaves it off and
// says why, once.
func (c *cache) init(s *Store, size int) {
	c.s = s
	if size == 0 {
		return
	}
	dirs := make([]string, numShards)
	for i := range dirs {
		dirs[i] = s.shards[i].dir
	}
	c.budget = size / numShards
	for i := range c.shards {
		c.shards[i].m = make(map[string]cached)
	}
	c.ours = make(map[uint32]struct{})
	c.enabled = true
	w, err := startWatch(s.root, dirs, c.handle, c.watchError)
	if err != nil {
		c.enabled = false
		s.log.Warn("disk: cannot watch the session directory; running without the read cache",
			"dir", s.root, "err", err)
		return
	}
	c.watcher = w
	c.on.Store(true)
}

// testHookEvents, if set, sees every batch of events after the store
// handled it. The package's tests set it once, before any store exists, to
// learn when a watcher has caught up.
var testHookEvents func(*Store, []dirEvent)

// handle evicts the keys a batch of events names, except for this store's
// own writes. It runs on the watcher's goroutine.
func (c *cache) handle(batch []dirEvent) {
	for j, ev := range batch {
		switch {
		case ev.op == evOverflow:
			clear(c.ours)
			c.watchError(errOverflow)
			continue
		case ev.op == evDirGone:
			c.disable("a session directory was removed, renamed or unmounted")
			continue
		case ev.shard == -1:
			// The root: only the shard directories matter.
			if isShardName(ev.name) {
				c.disable("a session subdirectory was removed, renamed or replaced")
			}
			continue
		case ev.shard < 0:
			continue
		}
		if ev.name == c.s.spareName {
			switch ev.op {
			case evMovedFrom:
				c.ours[ev.cookie] = struct{}{}
			case evMovedTo:
				delete(c.ours, ev.cookie)
			}
			continue
		}
		if ev.name == "" || ev.name[0] == '.' {
			continue // temp, spare, lock and owner files
		}
		switch ev.op {
		case evMovedTo:
			if _, own := c.ours[ev.cookie]; own {
				delete(c.ours, ev.cookie)
				continue
			}
		case evMovedFrom:
			// The other half follows: an exchange with our spare moves
			// the replaced file to the spare's name.
			if c.movedToSpare(batch[j+1:], ev.cookie) {
				continue
			}
		}
		key, ok := keyOfName(ev.name)
		if !ok {
			continue
		}
		c.evict(shardOf(key), key)
	}
	if len(c.ours) > 1024 {
		// Halves never seen (moves out of the tree): forget them.
		clear(c.ours)
	}
	if testHookEvents != nil {
		testHookEvents(c.s, batch)
	}
}

// movedToSpare reports whether the rename with cookie ends, among rest, at
// this store's spare.
func (c *cache) movedToSpare(rest []dirEvent, cookie uint32) bool {
	for _, ev := range rest {
		if ev.op == evMovedTo && ev.cookie == cookie {
			return ev.name == c.s.spareName
		}
	}
	return false
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
	sh := &c.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if sh.gen != gen || !c.on.Load() {
		return
	}
	c.insert(sh, key, rec)
}

// store caches rec as the record just written under key. Writers call it
// after the rename, still holding the shard lock; it bumps the generation
// so that a Load that read the file before this write cannot insert what
// it read.
func (c *cache) store(i int, key string, rec session.Record) {
	if !c.enabled {
		return
	}
	sh := &c.shards[i]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	c.remove(sh, key)
	if c.on.Load() {
		c.insert(sh, key, rec)
	}
}

// insert adds a copy of rec; sh.mu is held.
func (c *cache) insert(sh *cacheShard, key string, rec session.Record) {
	size := len(rec.Data) + len(key) + cacheEntryOverhead
	if size > c.budget {
		c.remove(sh, key)
		return
	}
	rec.Data = clone(rec.Data)
	c.remove(sh, key)
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

func (c *cache) remove(sh *cacheShard, key string) {
	if e, ok := sh.m[key]; ok {
		sh.bytes -= e.size
		delete(sh.m, key)
	}
}

// evict forgets key.
func (c *cache) evict(i int, key string) {
	if !c.enabled {
		return
	}
	sh := &c.shards[i]
	sh.mu.Lock()
	c.remove(sh, key)
	sh.gen++
	sh.mu.Unlock()
}

func (c *cache) dropAll() {
	if !c.enabled {
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

// close stops the watcher and waits for its goroutine.
func (c *cache) close() error {
	if c.watcher == nil {
		return nil
	}
	c.on.Store(false)
	err := c.watcher.Close()
	c.dropAll()
	return err
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
