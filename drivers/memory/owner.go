package memory

import (
	"context"
	"hash/maphash"
	"sync"

	session "github.com/websession/websession/core"
)

// ownerShard maps owners to the keys of their records. Every change to it
// is made while the record's shard is locked, and the locks are always
// taken in that order (record shard, then owner shard), so the index is
// exact whenever no write is in progress; LoadOwned re-checks each record
// anyway, so it never lists one caught mid-change.
type ownerShard struct {
	mu sync.Mutex
	m  map[string]map[string]struct{}
	_  [40]byte
}

func (s *Store) ownerShard(owner string) *ownerShard {
	return &s.owners[maphash.String(s.seed, owner)%numShards]
}

// index moves key from owner from to owner to. The caller holds key's
// record shard.
func (s *Store) index(key, from, to string) {
	if from == to {
		return
	}
	if from != "" {
		osh := s.ownerShard(from)
		osh.mu.Lock()
		if keys := osh.m[from]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(osh.m, from)
			}
		}
		osh.mu.Unlock()
	}
	if to != "" {
		osh := s.ownerShard(to)
		osh.mu.Lock()
		if osh.m == nil {
			osh.m = make(map[string]map[string]struct{})
		}
		keys := osh.m[to]
		if keys == nil {
			keys = make(map[string]struct{})
			osh.m[to] = keys
		}
		keys[key] = struct{}{}
		osh.mu.Unlock()
	}
}

// LoadOwned implements session.OwnerIndex. Its cost grows with the
// owner's records only.
func (s *Store) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := begin(ctx, "load owned", owner); err != nil {
		return nil, err
	}
	osh := s.ownerShard(owner)
	osh.mu.Lock()
	keys := make([]string, 0, len(osh.m[owner]))
	for k := range osh.m[owner] {
		keys = append(keys, k)
	}
	osh.mu.Unlock()
	out := make([]session.OwnedRecord, 0, len(keys))
	for _, k := range keys {
		sh := s.shard(k)
		sh.mu.RLock()
		e, ok := sh.m[k]
		sh.mu.RUnlock()
		if ok && e.owner == owner {
			out = append(out, session.OwnedRecord{Key: k, Record: e.record()})
		}
	}
	return out, nil
}
