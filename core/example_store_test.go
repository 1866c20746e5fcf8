package session_test

import (
	"context"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// exampleStore is the smallest correct Store, standing in for a real
// driver (drivers/memory, drivers/disk, ...) in the examples: core cannot
// import those without a module cycle.
type exampleStore struct {
	mu sync.Mutex
	m  map[string]session.Record
}

func newExampleStore() *exampleStore { return &exampleStore{m: map[string]session.Record{}} }

func (s *exampleStore) Load(ctx context.Context, key string) (session.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.m[key]
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	r.Data = append([]byte(nil), r.Data...)
	return r, ctx.Err()
}

func (s *exampleStore) Create(ctx context.Context, key string, r session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[key]; ok {
		return session.ErrExists
	}
	r.Data, r.Version = append([]byte(nil), r.Data...), 1
	s.m[key] = r
	return ctx.Err()
}

func (s *exampleStore) Update(ctx context.Context, key string, r session.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	switch {
	case !ok:
		return session.ErrNotFound
	case old.Version != r.Version:
		return session.ErrConflict
	}
	old.Data, old.ATime, old.Version = append([]byte(nil), r.Data...), r.ATime, old.Version+1
	s.m[key] = old
	return ctx.Err()
}

func (s *exampleStore) Touch(ctx context.Context, key string, atime time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	if !ok {
		return session.ErrNotFound
	}
	old.ATime = atime
	s.m[key] = old
	return ctx.Err()
}

func (s *exampleStore) Delete(ctx context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
	return ctx.Err()
}

func (s *exampleStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, r := range s.m {
		if r.ATime.Before(cutoff) {
			delete(s.m, k)
			n++
		}
	}
	return n, ctx.Err()
}
