package session

import (
	"context"
	"encoding/json"
	"maps"
	"sync"
)

// saveSlots makes the saves of one session inside one process take turns.
// Without it, N overlapping requests of one session each load version v,
// and all but one of their compare-and-swaps fail and reload: O(N²) store
// calls, and under load some run out of retries. With it, each save waits
// for the one before and starts from the values that one wrote, so it needs
// a single store call. A slot exists only while some request holds or waits
// for it.
type saveSlots struct {
	shards [32]slotShard
}

type slotShard struct {
	mu sync.Mutex
	m  map[string]*saveSlot
}

// saveSlot is the turn of one session's saves. Its fields other than sem
// and refs are read and written only by the holder of sem.
type saveSlot struct {
	sem  chan struct{} // holds one token while a save runs
	refs int           // holders and waiters; guarded by the shard's mu

	// What the last save of this process wrote, while other saves wait
	// for the slot: known is false when the store may hold anything newer.
	known  bool
	rec    Record // Data nil
	ip     []byte
	meta   sessionMeta
	values map[string]json.RawMessage // never changed once here
}

var slotPool = sync.Pool{New: func() any { return &saveSlot{sem: make(chan struct{}, 1)} }}

func (t *saveSlots) shard(key string) *slotShard {
	// Store keys are base64 of a hash: their bytes are already uniform.
	return &t.shards[key[len(key)-1]%byte(len(t.shards))]
}

// acquire waits for key's turn, or until ctx ends.
func (t *saveSlots) acquire(ctx context.Context, key string) (*saveSlot, error) {
	sh := t.shard(key)
	sh.mu.Lock()
	sl := sh.m[key]
	if sl == nil {
		if sh.m == nil {
			sh.m = make(map[string]*saveSlot)
		}
		sl = slotPool.Get().(*saveSlot)
		sh.m[key] = sl
	}
	sl.refs++
	sh.mu.Unlock()
	select {
	case sl.sem <- struct{}{}:
		return sl, nil
	default:
	}
	select {
	case sl.sem <- struct{}{}:
		return sl, nil
	case <-ctx.Done():
		t.unref(sh, key, sl)
		return nil, ctx.Err()
	}
}

// release ends the turn taken by acquire.
func (t *saveSlots) release(key string, sl *saveSlot) {
	<-sl.sem
	t.unref(t.shard(key), key, sl)
}

func (t *saveSlots) unref(sh *slotShard, key string, sl *saveSlot) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl.refs--
	if sl.refs == 0 {
		delete(sh.m, key)
		sl.forget()
		slotPool.Put(sl)
	}
}

// waiters reports whether other saves wait for sl, so that what the holder
// wrote is worth keeping for them.
func (t *saveSlots) waiters(key string, sl *saveSlot) bool {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sl.refs > 1
}

// remember keeps what s just wrote for the saves waiting their turn. s
// must be copied when its request may still change its values in place.
func (sl *saveSlot) remember(s *Session, copyValues bool) {
	if !s.m.slots.waiters(s.key, sl) {
		sl.forget()
		return
	}
	values := s.values
	if copyValues {
		values = maps.Clone(values)
	}
	sl.known, sl.rec, sl.ip, sl.meta, sl.values = true, s.rec, s.ip, s.meta, values
}

func (sl *saveSlot) forget() {
	sl.known, sl.rec, sl.ip, sl.meta, sl.values = false, Record{}, nil, sessionMeta{}, nil
}
