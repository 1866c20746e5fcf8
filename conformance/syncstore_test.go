package conformance

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// syncStore is a store written the way third parties write in-process
// stores, over a sync.Map of immutable entries. It ignores its namespace
// (every instance is its own storage, so it declares SharedStorage
// unsupported) and does not implement session.OwnerIndex. With bug "" it
// is correct and must pass the whole suite; each sync-* defect is a
// check-then-act mistake: a Load, then a Store that does not check that
// nothing changed in between.
type syncStore struct {
	m   sync.Map // key → *syncEntry
	bug string
}

type syncEntry struct {
	data           []byte
	atime, created time.Time
	version        uint64
}

// The defects of syncStore.
const (
	syncRacyCreate      = "sync-racy-create"
	syncRacyUpdate      = "sync-racy-update"
	syncTouchReadWrite  = "sync-touch-read-write"
	syncCleanupTwoPhase = "sync-cleanup-two-phase"
)

func init() {
	for bug, what := range map[string]string{
		syncRacyCreate:      "sync.Map, Create Loads, then Stores (not LoadOrStore)",
		syncRacyUpdate:      "sync.Map, Update Loads and compares the version, then Stores (not CompareAndSwap)",
		syncTouchReadWrite:  "sync.Map, Touch Loads, then Stores a copy with the new ATime",
		syncCleanupTwoPhase: "sync.Map, Cleanup collects idle keys in Range, then Deletes them (not CompareAndDelete)",
	} {
		defects[bug] = what
	}
}

func syncHarness(bug string) Harness {
	return Harness{
		NewStore: func(tb testing.TB, ns string) session.Store { return &syncStore{bug: bug} },
		Unsupported: map[Capability]string{
			SharedStorage: "in-process: each instance is its own map",
		},
	}
}

func (e *syncEntry) record() session.Record {
	return session.Record{Data: append([]byte{}, e.data...), ATime: e.atime, Created: e.created, Version: e.version}
}

func (s *syncStore) Load(ctx context.Context, key string) (session.Record, error) {
	if err := ctx.Err(); err != nil {
		return session.Record{}, err
	}
	v, ok := s.m.Load(key)
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	return v.(*syncEntry).record(), nil
}

func (s *syncStore) Create(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return fmt.Errorf("syncstore: %w", session.ErrInvalidKey)
	}
	e := &syncEntry{data: append([]byte{}, rec.Data...), atime: rec.ATime.Round(0), created: rec.Created.Round(0), version: 1}
	if s.bug == syncRacyCreate {
		if _, ok := s.m.Load(key); ok {
			return session.ErrExists
		}
		s.m.Store(key, e)
		return nil
	}
	if _, taken := s.m.LoadOrStore(key, e); taken {
		return session.ErrExists
	}
	return nil
}

// swap replaces the entry under key with next(old), retrying when another
// write got in between (or, with a defect, not checking).
func (s *syncStore) swap(key string, checked bool, next func(old *syncEntry) (*syncEntry, error)) error {
	for {
		v, ok := s.m.Load(key)
		if !ok {
			return session.ErrNotFound
		}
		e, err := next(v.(*syncEntry))
		if err != nil {
			return err
		}
		if !checked {
			s.m.Store(key, e)
			return nil
		}
		if s.m.CompareAndSwap(key, v, e) {
			return nil
		}
	}
}

func (s *syncStore) Update(ctx context.Context, key string, rec session.Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	data := append([]byte{}, rec.Data...)
	return s.swap(key, s.bug != syncRacyUpdate, func(old *syncEntry) (*syncEntry, error) {
		if old.version != rec.Version {
			return nil, session.ErrConflict
		}
		return &syncEntry{data: data, atime: rec.ATime.Round(0), created: old.created, version: old.version + 1}, nil
	})
}

func (s *syncStore) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.swap(key, s.bug != syncTouchReadWrite, func(old *syncEntry) (*syncEntry, error) {
		return &syncEntry{data: old.data, atime: atime.Round(0), created: old.created, version: old.version}, nil
	})
}

func (s *syncStore) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.m.Delete(key)
	return nil
}

func (s *syncStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	if s.bug == syncCleanupTwoPhase {
		var idle []any
		s.m.Range(func(k, v any) bool {
			if v.(*syncEntry).atime.Before(cutoff) {
				idle = append(idle, k)
			}
			return true
		})
		for _, k := range idle {
			if _, loaded := s.m.LoadAndDelete(k); loaded {
				n++
			}
		}
		return n, nil
	}
	s.m.Range(func(k, v any) bool {
		if v.(*syncEntry).atime.Before(cutoff) && s.m.CompareAndDelete(k, v) {
			n++
		}
		return true
	})
	return n, nil
}
