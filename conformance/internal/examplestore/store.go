// Package examplestore is the example third-party store of the
// conformance README: session records on a key-value server that many
// stores share, each under the key prefix of its namespace, as on one
// Redis server. Server stands in for the real server, in this process.
//
// It exists to show, in examplestore_test.go, how a store adopts the
// conformance suite: NewStore opens the storage that the namespace names
// (here a key prefix), so that a second store over the same namespace
// sees the same records, as a second process would.
package examplestore

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// Server is the shared storage: records by full key (prefix and key) and
// an index of each owner's keys. Each method of Store is one atomic step
// on it, as a Lua script is on Redis.
type Server struct {
	mu      sync.Mutex
	records map[string]record
	owners  map[string]map[string]bool // prefix+owner → full keys
}

type record struct {
	data           []byte
	atime, created time.Time
	version        uint64
	owner          string
}

// NewServer returns an empty Server.
func NewServer() *Server {
	return &Server{records: map[string]record{}, owners: map[string]map[string]bool{}}
}

// Store is a session.Store, and a session.OwnerIndex, over the records
// of one namespace of a Server.
type Store struct {
	srv    *Server
	prefix string // namespace + ":", a byte no key holds
	closed atomic.Bool
}

var (
	_ session.Store      = (*Store)(nil)
	_ session.OwnerIndex = (*Store)(nil)
)

// New returns a Store over the records of namespace on srv.
func New(srv *Server, namespace string) *Store {
	return &Store{srv: srv, prefix: namespace + ":"}
}

// Close implements io.Closer: later calls fail with session.ErrClosed.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// do runs fn on the server, atomically.
func (s *Store) do(ctx context.Context, fn func() error) error {
	if s.closed.Load() {
		return fmt.Errorf("examplestore: %w", session.ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	return fn()
}

func (s *Store) index(full, owner string) {
	if owner == "" {
		return
	}
	set := s.srv.owners[s.prefix+owner]
	if set == nil {
		set = map[string]bool{}
		s.srv.owners[s.prefix+owner] = set
	}
	set[full] = true
}

func (s *Store) unindex(full, owner string) {
	if set := s.srv.owners[s.prefix+owner]; set != nil {
		delete(set, full)
		if len(set) == 0 {
			delete(s.srv.owners, s.prefix+owner)
		}
	}
}

func clone(b []byte) []byte { return append([]byte{}, b...) }

func (r record) session() session.Record {
	return session.Record{Data: clone(r.data), ATime: r.atime, Created: r.created, Version: r.version, Owner: r.owner}
}

// Load implements session.Store.
func (s *Store) Load(ctx context.Context, key string) (rec session.Record, err error) {
	err = s.do(ctx, func() error {
		r, ok := s.srv.records[s.prefix+key]
		if !ok {
			return session.ErrNotFound
		}
		rec = r.session()
		return nil
	})
	return rec, err
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if !session.ValidKey(key) {
		return fmt.Errorf("examplestore: %w", session.ErrInvalidKey)
	}
	return s.do(ctx, func() error {
		full := s.prefix + key
		if _, taken := s.srv.records[full]; taken {
			return session.ErrExists
		}
		// Round(0) drops the monotonic clock reading, meaningless once stored.
		s.srv.records[full] = record{data: clone(rec.Data), atime: rec.ATime.Round(0), created: rec.Created.Round(0), version: 1, owner: rec.Owner}
		s.index(full, rec.Owner)
		return nil
	})
}

// Update implements session.Store.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	return s.do(ctx, func() error {
		full := s.prefix + key
		r, ok := s.srv.records[full]
		switch {
		case !ok:
			return session.ErrNotFound
		case r.version != rec.Version:
			return session.ErrConflict
		}
		if r.owner != rec.Owner {
			s.unindex(full, r.owner)
			s.index(full, rec.Owner)
		}
		s.srv.records[full] = record{data: clone(rec.Data), atime: rec.ATime.Round(0), created: r.created, version: r.version + 1, owner: rec.Owner}
		return nil
	})
}

// Touch implements session.Store.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	return s.do(ctx, func() error {
		full := s.prefix + key
		r, ok := s.srv.records[full]
		if !ok {
			return session.ErrNotFound
		}
		r.atime = atime.Round(0)
		s.srv.records[full] = r
		return nil
	})
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	return s.do(ctx, func() error {
		full := s.prefix + key
		if r, ok := s.srv.records[full]; ok {
			delete(s.srv.records, full)
			s.unindex(full, r.owner)
		}
		return nil
	})
}

// Cleanup implements session.Store. It looks at the records of its own
// namespace only.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (n int, err error) {
	err = s.do(ctx, func() error {
		for full, r := range s.srv.records {
			if strings.HasPrefix(full, s.prefix) && r.atime.Before(cutoff) {
				delete(s.srv.records, full)
				s.unindex(full, r.owner)
				n++
			}
		}
		return nil
	})
	return n, err
}

// LoadOwned implements session.OwnerIndex from the index: its cost grows
// with the owner's records only.
func (s *Store) LoadOwned(ctx context.Context, owner string) (out []session.OwnedRecord, err error) {
	if !session.ValidKey(owner) {
		return nil, fmt.Errorf("examplestore: owner: %w", session.ErrInvalidKey)
	}
	err = s.do(ctx, func() error {
		for full := range s.srv.owners[s.prefix+owner] {
			out = append(out, session.OwnedRecord{Key: strings.TrimPrefix(full, s.prefix), Record: s.srv.records[full].session()})
		}
		return nil
	})
	return out, err
}
