// Package memory is an in-process session.Store: sessions live in this
// process's memory and die with it, and are not shared between processes.
// It suits tests, development and single-process deployments that accept
// losing sessions on restart.
//
// The store is split into shards, each a map under its own lock, so
// requests on different sessions rarely contend: there is no global lock on
// any path but Cleanup's walk, which takes one shard at a time. Data is
// copied on the way in and on the way out, so neither the caller nor the
// store can change the other's bytes.
package memory

import (
	"context"
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
	seed   maphash.Seed
	shards [numShards]shard
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
}

var _ session.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	s := &Store{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].m = make(map[string]entry)
	}
	return s
}

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

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := ctx.Err(); err != nil {
		return session.Record{}, err
	}
	sh := s.shard(key)
	sh.mu.RLock()
	e, ok := sh.m[key]
	sh.mu.RUnlock()
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	// e.data is never modified in place (writes replace it), so copying
	// outside the lock is safe.
	return session.Record{Data: clone(e.data), ATime: e.atime, Created: e.created, Version: e.version}, nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return session.ErrInvalidKey
	}
	e := entry{data: clone(rec.Data), atime: stamp(rec.ATime), created: stamp(rec.Created), version: 1}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[key]; ok {
		return session.ErrExists
	}
	sh.m[key] = e
	return nil
}

// Update implements session.Store.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data := clone(rec.Data)
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	switch {
	case !ok:
		return session.ErrNotFound
	case e.version != rec.Version:
		return session.ErrConflict
	}
	e.data, e.atime, e.version = data, stamp(rec.ATime), e.version+1
	sh.m[key] = e
	return nil
}

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.m[key]
	if !ok {
		return session.ErrNotFound
	}
	e.atime = stamp(atime)
	sh.m[key] = e
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	sh := s.shard(key)
	sh.mu.Lock()
	delete(sh.m, key)
	sh.mu.Unlock()
	return nil
}

// Cleanup implements session.Store. It locks one shard at a time, so
// requests on other shards proceed while it runs.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	for i := range s.shards {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		sh := &s.shards[i]
		sh.mu.Lock()
		for k, e := range sh.m {
			if e.atime.Before(cutoff) {
				delete(sh.m, k)
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
