package syncmapstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// Store is a session.Store over a sync.Map. The zero value is an empty,
// usable store.
type Store struct {
	m sync.Map // key → *entry
}

// entry is never modified once stored: a write stores a new entry in its
// place with CompareAndSwap, so readers need no lock and a write that lost
// a race sees it and retries.
type entry struct {
	data           []byte
	atime, created time.Time
	version        uint64
}

var _ session.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store { return &Store{} }

func clone(b []byte) []byte { return append([]byte{}, b...) }

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := ctx.Err(); err != nil {
		return session.Record{}, err
	}
	v, ok := s.m.Load(key)
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	e := v.(*entry)
	return session.Record{Data: clone(e.data), ATime: e.atime, Created: e.created, Version: e.version}, nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return fmt.Errorf("syncmapstore: %w: %q", session.ErrInvalidKey, key)
	}
	// Round(0) drops the monotonic clock reading, meaningless once stored.
	e := &entry{data: clone(rec.Data), atime: rec.ATime.Round(0), created: rec.Created.Round(0), version: 1}
	if _, taken := s.m.LoadOrStore(key, e); taken {
		return session.ErrExists
	}
	return nil
}

// Update implements session.Store.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data := clone(rec.Data)
	return s.swap(key, func(old *entry) (*entry, error) {
		if old.version != rec.Version {
			return nil, session.ErrConflict
		}
		return &entry{data: data, atime: rec.ATime.Round(0), created: old.created, version: old.version + 1}, nil
	})
}

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.swap(key, func(old *entry) (*entry, error) {
		return &entry{data: old.data, atime: atime.Round(0), created: old.created, version: old.version}, nil
	})
}

// swap replaces the entry under key with next(old), retrying whenever
// another write got in between.
func (s *Store) swap(key string, next func(old *entry) (*entry, error)) error {
	for {
		v, ok := s.m.Load(key)
		if !ok {
			return session.ErrNotFound
		}
		old := v.(*entry)
		e, err := next(old)
		if err != nil {
			return err
		}
		if s.m.CompareAndSwap(key, old, e) {
			return nil
		}
	}
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.m.Delete(key)
	return nil
}

// Cleanup implements session.Store. A record touched while Cleanup runs is
// kept: CompareAndDelete only removes the entry that was found idle.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	n := 0
	var err error
	s.m.Range(func(k, v any) bool {
		if err = ctx.Err(); err != nil {
			return false
		}
		if v.(*entry).atime.Before(cutoff) && s.m.CompareAndDelete(k, v) {
			n++
		}
		return true
	})
	return n, err
}
