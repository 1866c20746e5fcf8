package disk

import (
	"sync"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// cacheEntryOverhead approximates the memory of a cache entry beyond its
// key and data: the map slot, the entry and the record's times.
const cacheEntryOverhead = 128

// The read cache keeps decoded records in memory so that loading a session
// again costs no file I/O, and it stays exact across processes without
// watching files: every store over a directory maps the same small file,
// <root>/.cache, a table of 65,536 version counters shared through memory
// (mmap, MAP_SHARED). Each session key has one counter (256 per shard,
// chosen by a hash of the key), so all the keys of a counter live in one
// shard and their writers are serialised by that shard's lock.
//
//   - A writer, holding the shard's lock, makes the key's counter odd
//     before it renames or removes the session file, and even (one more)
//     after. It then caches what it wrote, tagged with that even value, so
//     the next Load of its own write reads no file.
//   - A Load returns a cached record only if the key's counter still holds
//     the value the record is tagged with: no writer, in any process, has
//     touched a key of that counter since. Otherwise it reads the file,
//     and caches what it read tagged with the counter's value from before
//     the read, only if that value was even (no write in progress). A write
//     that began meanwhile has changed the counter, so that entry is never
//     served.
//
// Another process's write is thus seen by the very next Load, and a
// crashed writer's odd counter just keeps its keys uncached until the next
// write. Nothing is compared by file identity (files are reused), and the
// cache costs a write two stores to memory, not a system call. Counters
// are compared for equality only, so the table needs no durability: after
// a reboot every cache starts empty. It cannot work across machines (a
// network file system does not share mappings): there, turn it off.
type cache struct {
	s  *Store
	on bool // set by init, never changed
	// lost is set once the table file was found removed or replaced (by
	// hand: the store never does it): processes mapping another file
	// would no longer see each other's writes, so the cache stops serving.
	lost    atomic.Bool
	checked atomic.Int64 // when the table's file was last checked, Unix ns
	budget  int          // bytes per shard
	shards  [numShards]cacheShard
	table   *counterTable
}

const (
	slotsPerShard = 256
	tableSlots    = numShards * slotsPerShard
	tableBytes    = tableSlots * 8
	cacheFileName = ".cache"
)

// counterTable is the shared table, mapped from the .cache file.
type counterTable struct {
	mem   []byte
	slots *[tableSlots]atomic.Uint64
	path  string
	id    fileInfo // the file mapped
}

type cacheShard struct {
	mu    sync.RWMutex
	m     map[string]cached
	bytes int
}

type cached struct {
	rec  session.Record // rec.Data is owned by the cache, never handed out
	size int
	ver  uint64 // the key's counter when rec was current
}

// openTable maps the counter table of the store at root; the package's
// tests replace it to simulate a system where it cannot be mapped.
var openTable = mapCounterTable

// init maps the counter table and turns the cache on, or leaves it off and
// says why, once.
func (c *cache) init(s *Store, size int) {
	c.s = s
	if size == 0 {
		return
	}
	t, err := openTable(s.root+"/"+cacheFileName, s.fileMode)
	if err != nil {
		s.log.Warn("disk: cannot map the cache's counter table; running without the read cache",
			"dir", s.root, "err", err)
		return
	}
	c.table = t
	c.budget = size / numShards
	for i := range c.shards {
		c.shards[i].m = make(map[string]cached)
	}
	c.on = true
}

// slot returns the counter of key, in shard i.
func (c *cache) slot(i int, key string) *atomic.Uint64 {
	// FNV-1a, 64 bits; shardOf uses the low bits of the 32-bit one.
	h := uint64(14695981039346656037)
	for j := 0; j < len(key); j++ {
		h ^= uint64(key[j])
		h *= 1099511628211
	}
	return &c.table.slots[i*slotsPerShard+int(h>>40)%slotsPerShard]
}

// get returns a copy of the cached record of key if it is current, and
// otherwise the counter value to pass to put after reading the file.
func (c *cache) get(i int, key string) (session.Record, uint64, bool) {
	if !c.on || !c.tableHeld() {
		return session.Record{}, 1, false
	}
	v := c.slot(i, key).Load()
	sh := &c.shards[i]
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok || e.ver != v || v&1 == 1 {
		return session.Record{}, v, false
	}
	rec := e.rec
	rec.Data = clone(e.rec.Data)
	return rec, v, true
}

// tableCheckInterval is how often a Load checks that the counter table's
// file is still the one mapped: one stat a second, whatever the load.
var tableCheckInterval = time.Second // a variable for the tests

// tableHeld reports whether the counter table still coordinates this
// store's cache with the others. Someone removing or replacing the .cache
// file by hand would leave stores mapping different tables, each blind to
// the others' writes; the first Load to notice turns this store's cache
// off for good (and says so), so a deleted or killed session is never
// served from it.
func (c *cache) tableHeld() bool {
	if c.lost.Load() {
		return false
	}
	now := time.Now().UnixNano()
	last := c.checked.Load()
	if now-last < int64(tableCheckInterval) || !c.checked.CompareAndSwap(last, now) {
		return true
	}
	fi, err := lstatPath(c.table.path)
	if err == nil && fi.sameFile(c.table.id) {
		return true
	}
	if !c.lost.Swap(true) {
		c.s.log.Error("disk: the read cache's counter table was removed or replaced behind the store's back; running without the read cache",
			"path", c.table.path, "err", err)
		for i := range c.shards {
			sh := &c.shards[i]
			sh.mu.Lock()
			clear(sh.m)
			sh.bytes = 0
			sh.mu.Unlock()
		}
	}
	return false
}

// put caches a copy of rec, read from the file after get returned v,
// unless a write was in progress then. A write that began since has
// changed the counter: the entry is then never served.
func (c *cache) put(i int, key string, v uint64, rec session.Record) {
	if !c.on || v&1 == 1 || c.lost.Load() {
		return
	}
	c.insert(i, key, v, rec)
}

// begin marks a write of key in progress; the caller holds shard i's lock
// and passes the result to end once the file is renamed or removed.
func (c *cache) begin(i int, key string) *atomic.Uint64 {
	if !c.on {
		return nil
	}
	ctr := c.slot(i, key)
	v := ctr.Load()
	if v&1 == 0 {
		ctr.Store(v + 1)
	} else {
		ctr.Store(v + 2) // left odd by a writer that crashed
	}
	return ctr
}

// end marks the write done and returns the counter's new value.
func (c *cache) end(ctr *atomic.Uint64) uint64 {
	if ctr == nil {
		return 1
	}
	v := ctr.Load() + 1
	ctr.Store(v)
	return v
}

// store caches rec as written under key, current at counter value v.
func (c *cache) store(i int, key string, v uint64, rec session.Record) {
	if c.on && !c.lost.Load() {
		c.insert(i, key, v, rec)
	}
}

func (c *cache) insert(i int, key string, v uint64, rec session.Record) {
	sh := &c.shards[i]
	size := len(rec.Data) + len(key) + cacheEntryOverhead
	rec.Data = clone(rec.Data)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	c.remove(sh, key)
	if size > c.budget {
		return
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
	sh.m[key] = cached{rec: rec, size: size, ver: v}
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
	if !c.on {
		return
	}
	sh := &c.shards[i]
	sh.mu.Lock()
	c.remove(sh, key)
	sh.mu.Unlock()
}

// close unmaps the table; the store is closed, so nothing uses it.
func (c *cache) close() error {
	if !c.on {
		return nil
	}
	c.on = false
	for i := range c.shards {
		c.shards[i].m = nil
	}
	return c.table.unmap()
}

func isShardName(name string) bool {
	isHex := func(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }
	return len(name) == 2 && isHex(name[0]) && isHex(name[1])
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}
