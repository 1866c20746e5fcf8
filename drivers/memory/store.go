package memory

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// numShards spreads keys over independent locks. 256 keeps contention
// negligible on machines with many cores while costing a few KB when empty.
const numShards = 256

// Store is an in-memory session.Store. The zero value is not usable; call
// New.
type Store struct {
	seed        maphash.Seed
	maxDataSize int
	shards      [numShards]shard
	owners      [numShards]ownerShard
}

type shard struct {
	mu sync.RWMutex
	m  map[string]entry
	_  [32]byte // one shard per 64-byte cache line: no false sharing of locks
}

type entry struct {
	data    []byte
	atime   time.Time
	created time.Time
	version uint64
	owner   string
}

var (
	_ session.Store      = (*Store)(nil)
	_ session.OwnerIndex = (*Store)(nil)
)

// New returns an empty Store.
func New(opts ...Option) (*Store, error) {
	o := options{maxDataSize: DefaultMaxDataSize}
	for _, opt := range opts {
		if opt == nil {
			return nil, opError("new", errors.New("nil Option"))
		}
		if err := opt(&o); err != nil {
			return nil, opError("new", err)
		}
	}
	s := &Store{seed: maphash.MakeSeed(), maxDataSize: o.maxDataSize}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	return s, nil
}

// MaxDataSize returns the largest Data a record may hold, in bytes.
func (s *Store) MaxDataSize() int { return s.maxDataSize }

func (s *Store) shard(key string) *shard {
	return &s.shards[maphash.String(s.seed, key)%numShards]
}

// stamp drops the monotonic reading, which means nothing once stored.
func stamp(t time.Time) time.Time { return t.Round(0) }

func clone(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}

func (s *Store) checkSize(op string, data []byte) error {
	if len(data) > s.maxDataSize {
		return opError(op, fmt.Errorf("%w: %d bytes, limit %d", session.ErrTooLarge, len(data), s.maxDataSize))
	}
	return nil
}

func (e *entry) record() session.Record {
	// e.data is never modified in place (writes replace it), so copying
	// outside the lock is safe.
	return session.Record{Data: clone(e.data), ATime: e.atime, Created: e.created, Version: e.version, Owner: e.owner}
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := begin(ctx, "load", key); err != nil {
		return session.Record{}, err
	}
	sh := s.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok {
		return session.Record{}, opError("load", session.ErrNotFound)
	}
	return e.record(), nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := begin(ctx, "create", key); err != nil {
		return err
	}
	if err := s.checkSize("create", rec.Data); err != nil {
		return err
	}
	e := entry{data: clone(rec.Data), atime: stamp(rec.ATime), created: stamp(rec.Created), version: 1, owner: rec.Owner}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; ok {
		return opError("create", session.ErrExists)
	}
	sh.m[key] = e
	s.index(key, "", e.owner)
	return nil
}

// Update implements session.Store.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := begin(ctx, "update", key); err != nil {
		return err
	}
	if err := s.checkSize("update", rec.Data); err != nil {
		return err
	}
	data := clone(rec.Data)
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	switch {
	case !ok:
		return opError("update", session.ErrNotFound)
	case e.version != rec.Version:
		return opError("update", session.ErrConflict)
	}
	s.index(key, e.owner, rec.Owner)
	e.data, e.atime, e.version, e.owner = data, stamp(rec.ATime), e.version+1, rec.Owner
	sh.m[key] = e
	return nil
}

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := begin(ctx, "touch", key); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok {
		return opError("touch", session.ErrNotFound)
	}
	e.atime = stamp(atime)
	sh.m[key] = e
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := begin(ctx, "delete", key); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.m[key]; ok {
		delete(sh.m, key)
		s.index(key, e.owner, "")
	}
	return nil
}

// Cleanup implements session.Store. It locks one shard at a time, so
// requests on other shards proceed while it runs.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return n, opError("cleanup", err)
		}
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.atime.Before(cutoff) {
				delete(sh.m, k)
				s.index(k, e.owner, "")
				n++
			}
		}
		sh.mu.Unlock()
	}
	return n, nil
}

// Len returns the number of records held.
func (s *Store) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}
