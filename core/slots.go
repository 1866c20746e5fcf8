package session

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
)

// saveSlots makes the saves of one session inside one process take turns
// and group them. Without it, N overlapping requests of one session each
// load version v, and all but one of their compare-and-swaps fail and
// reload: O(N²) store calls, and under load some run out of time. With
// it, the saves that arrive while one is being written wait, and the first
// of them writes them all, merged, in one compare-and-swap (group commit):
// N overlapping saves cost a few store writes, not N, and never conflict
// with each other. A slot exists only while some save holds or waits for
// it.
type saveSlots struct {
	shards [32]slotShard
}

type slotShard struct {
	mu sync.Mutex
	m  map[string]*saveSlot
}

// saveSlot is the turn of one session's saves.
type saveSlot struct {
	refs int // saves holding or waiting for the slot; guarded by the shard's mu

	mu    sync.Mutex
	busy  bool       // a batch is being written
	queue []*saveReq // waiting, in arrival order

	// What this process last wrote, while other saves wait: known is false
	// when the store may hold anything newer. Read and written only by the
	// leader of the batch being written.
	known  bool
	rec    Record // Data nil
	ip     []byte
	meta   sessionMeta
	values map[string]json.RawMessage // never changed once here
}

// saveReq is one save waiting for, or taking part in, a batch.
type saveReq struct {
	alone     [1]*saveReq // the batch of a save that found the slot free
	s         *Session
	op        updater // an Update function to run last, or nil
	exclusive bool    // a Regenerate: written alone
	err       error   // its outcome, set by the batch's leader
	done      chan turn
}

// turn is what a waiting save is told: its outcome (err), or that it leads
// the next batch (batch, with it first).
type turn struct {
	err   error
	batch []*saveReq
}

var slotPool = sync.Pool{New: func() any { return new(saveSlot) }}

func (t *saveSlots) shard(key string) *slotShard {
	// Store keys are base64 of a hash: their bytes are already uniform.
	return &t.shards[key[len(key)-1]%byte(len(t.shards))]
}

// ref returns key's slot, making it if needed; unref lets it go.
func (t *saveSlots) ref(key string) *saveSlot {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl := sh.m[key]
	if sl == nil {
		if sh.m == nil {
			sh.m = make(map[string]*saveSlot)
		}
		sl = slotPool.Get().(*saveSlot)
		sh.m[key] = sl
	}
	sl.refs++
	return sl
}

func (t *saveSlots) unref(key string, sl *saveSlot) {
	sh := t.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sl.refs--
	if sl.refs == 0 {
		delete(sh.m, key)
		sl.forget()
		slotPool.Put(sl)
	}
}

// join queues r for key's slot and returns the batch r leads, or nil if
// another save's batch wrote r (r.err is then its outcome). It gives up,
// leaving r out, if ctx ends before r was taken into a batch.
func (sl *saveSlot) join(ctx context.Context, r *saveReq) ([]*saveReq, error) {
	sl.mu.Lock()
	if !sl.busy {
		sl.busy = true
		sl.mu.Unlock()
		r.alone[0] = r
		return r.alone[:], nil
	}
	r.done = make(chan turn, 1)
	sl.queue = append(sl.queue, r)
	sl.mu.Unlock()
	var t turn
	select {
	case t = <-r.done:
	case <-ctx.Done():
		sl.mu.Lock()
		if i := slices.Index(sl.queue, r); i >= 0 {
			sl.queue = slices.Delete(sl.queue, i, i+1)
			sl.mu.Unlock()
			return nil, ctx.Err()
		}
		sl.mu.Unlock()
		t = <-r.done // taken into a batch already: its leader's deadline is earlier than ours
	}
	if t.batch != nil {
		return t.batch, nil
	}
	r.err = t.err
	return nil, nil
}

// finish tells the other members of batch their outcomes, and passes the
// turn to the saves that queued meanwhile: the first of them leads them,
// up to the first exclusive one (a Regenerate leads alone).
func (sl *saveSlot) finish(batch []*saveReq) {
	for _, r := range batch[1:] {
		r.done <- turn{err: r.err}
	}
	sl.mu.Lock()
	if len(sl.queue) == 0 {
		sl.busy = false
		sl.mu.Unlock()
		return
	}
	n := 1
	if !sl.queue[0].exclusive {
		for n < len(sl.queue) && !sl.queue[n].exclusive {
			n++
		}
	}
	next := slices.Clone(sl.queue[:n])
	sl.queue = slices.Delete(sl.queue, 0, n)
	sl.mu.Unlock()
	next[0].done <- turn{batch: next}
}

// remember keeps what the batch just wrote for the saves waiting their
// turn, if any. values must not change afterwards.
func (sl *saveSlot) remember(rec Record, ip []byte, meta sessionMeta, values map[string]json.RawMessage) {
	sl.mu.Lock()
	waiting := len(sl.queue) > 0
	sl.mu.Unlock()
	if !waiting {
		sl.forget()
		return
	}
	rec.Data = nil
	sl.known, sl.rec, sl.ip, sl.meta, sl.values = true, rec, ip, meta, values
}

func (sl *saveSlot) forget() {
	sl.known, sl.rec, sl.ip, sl.meta, sl.values = false, Record{}, nil, sessionMeta{}, nil
}
