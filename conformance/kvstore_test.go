package conformance

import (
	"context"
	"encoding/binary"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// kvStore is a store written the way third parties write stores over a
// key-value server such as Redis, against a simulated one: every
// namespace is a key prefix on the one server ("ws:<namespace>:"), a
// record is a JSON value under prefix+"s:"+key, an owner's keys a set
// under prefix+"o:"+owner. Each server command runs atomically after a
// yield for its round trip; a script (eval) runs several at once, as Lua
// does. With bug "" it is correct and must pass the whole suite.
type kvStore struct {
	srv    *kvServer
	prefix string
	bug    string
	closed atomic.Bool
	once   sync.Once
	done   chan struct{} // closed by Close, as a connection's would be
}

// The defects of kvStore.
const (
	kvNoSeparator       = "kv-no-separator"
	kvCleanupScanAll    = "kv-cleanup-scan-all"
	kvCleanupGetThenDel = "kv-cleanup-get-then-del"
	kvClosePanics       = "kv-close-panics"
	kvOwnerTrustIndex   = "kv-owner-trusts-index"
	kvOwnerReindex      = "kv-owner-reindex"
	kvOwnerNotOnDelete  = "kv-owner-not-on-delete"
	kvOwnerNotOnCleanup = "kv-owner-not-on-cleanup"
)

func init() {
	for bug, what := range map[string]string{
		kvNoSeparator:       "key-value server, the key prefix is the namespace with no separator (\"ws:\"+ns+key)",
		kvCleanupScanAll:    "key-value server shared by apps, Cleanup scans every key (SCAN MATCH *)",
		kvCleanupGetThenDel: "key-value server, Cleanup GETs each record, then DELs it if it was idle",
		kvClosePanics:       "key-value server, Close closes its channel every time",
		kvOwnerTrustIndex:   "key-value server, Update to another owner adds to the new owner's set only; LoadOwned trusts the sets",
		kvOwnerReindex:      "key-value server, Update SREMs the key from its owner's set, then SADDs it back, two commands",
		kvOwnerNotOnDelete:  "key-value server, Delete leaves the key in its owner's set; LoadOwned trusts the sets",
		kvOwnerNotOnCleanup: "key-value server, Cleanup leaves the keys in their owners' sets; LoadOwned trusts the sets",
	} {
		defects[bug] = what
	}
}

// kvServer is the simulated key-value server.
type kvServer struct {
	mu   sync.Mutex
	vals map[string]string
	sets map[string]map[string]bool
}

// do runs one command or script: a round trip, then fn atomically.
func (srv *kvServer) do(fn func()) {
	runtime.Gosched()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	fn()
}

func (srv *kvServer) sadd(set, member string) {
	m := srv.sets[set]
	if m == nil {
		m = map[string]bool{}
		srv.sets[set] = m
	}
	m[member] = true
}

func (srv *kvServer) srem(set, member string) {
	delete(srv.sets[set], member)
	if len(srv.sets[set]) == 0 {
		delete(srv.sets, set)
	}
}

// scan returns up to count keys matching prefix (a glob "prefix*") that
// sort after cursor, and the cursor to continue from ("" at the end). Like
// Redis's SCAN, it returns every key present for the whole iteration,
// whatever is deleted meanwhile.
func (srv *kvServer) scan(cursor, prefix string, count int) ([]string, string) {
	var page []string
	srv.do(func() {
		for k := range srv.vals {
			if strings.HasPrefix(k, prefix) && k > cursor {
				page = append(page, k)
			}
		}
	})
	sort.Strings(page)
	if len(page) <= count {
		return page, ""
	}
	return page[:count], page[count-1]
}

// kvHarness is the Harness of a kvStore with the given defect: every
// namespace a key prefix on one server.
func kvHarness(bug string) Harness {
	srv := &kvServer{vals: map[string]string{}, sets: map[string]map[string]bool{}}
	return Harness{
		NewStore: func(tb testing.TB, ns string) session.Store {
			prefix := "ws:" + ns + ":"
			if bug == kvNoSeparator {
				prefix = "ws:" + ns
			}
			return &kvStore{srv: srv, prefix: prefix, bug: bug, done: make(chan struct{})}
		},
	}
}

// kvValue is a record as the server holds it, encoded as 26 bytes of
// header (version, atime, created, owner length) then owner and data.
type kvValue struct {
	Data    []byte
	ATime   int64
	Created int64
	Version uint64
	Owner   string
}

func encode(v kvValue) string {
	b := make([]byte, 26, 26+len(v.Owner)+len(v.Data))
	binary.BigEndian.PutUint64(b[0:], v.Version)
	binary.BigEndian.PutUint64(b[8:], uint64(v.ATime))
	binary.BigEndian.PutUint64(b[16:], uint64(v.Created))
	binary.BigEndian.PutUint16(b[24:], uint16(len(v.Owner)))
	b = append(b, v.Owner...)
	return string(append(b, v.Data...))
}

func decode(s string) (kvValue, bool) {
	if len(s) < 26 {
		return kvValue{}, false
	}
	n := int(binary.BigEndian.Uint16([]byte(s[24:26])))
	if len(s) < 26+n {
		return kvValue{}, false
	}
	return kvValue{
		Version: binary.BigEndian.Uint64([]byte(s[0:8])),
		ATime:   int64(binary.BigEndian.Uint64([]byte(s[8:16]))),
		Created: int64(binary.BigEndian.Uint64([]byte(s[16:24]))),
		Owner:   s[26 : 26+n],
		Data:    []byte(s[26+n:]),
	}, true
}

func (v kvValue) record() session.Record {
	data := v.Data
	if data == nil {
		data = []byte{}
	}
	return session.Record{Data: data, ATime: time.Unix(0, v.ATime), Created: time.Unix(0, v.Created), Version: v.Version, Owner: v.Owner}
}

func (s *kvStore) skey(key string) string {
	if s.bug == kvNoSeparator {
		return s.prefix + key
	}
	return s.prefix + "s:" + key
}

func (s *kvStore) oset(owner string) string {
	if s.bug == kvNoSeparator {
		return s.prefix + "#" + owner
	}
	return s.prefix + "o:" + owner
}

func (s *kvStore) check(ctx context.Context) error {
	if s.closed.Load() {
		return fmt.Errorf("kvstore: %w", session.ErrClosed)
	}
	return ctx.Err()
}

func (s *kvStore) Close() error {
	s.closed.Store(true)
	if s.bug == kvClosePanics {
		close(s.done)
		return nil
	}
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *kvStore) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.check(ctx); err != nil {
		return session.Record{}, err
	}
	var raw string
	var ok bool
	s.srv.do(func() { raw, ok = s.srv.vals[s.skey(key)] }) // GET
	if !ok {
		return session.Record{}, session.ErrNotFound
	}
	v, _ := decode(raw)
	return v.record(), nil
}

func (s *kvStore) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		return fmt.Errorf("kvstore: %w", session.ErrInvalidKey)
	}
	v := encode(kvValue{Data: rec.Data, ATime: rec.ATime.UnixNano(), Created: rec.Created.UnixNano(), Version: 1, Owner: rec.Owner})
	taken := false
	s.srv.do(func() { // SET NX, SADD
		k := s.skey(key)
		if _, taken = s.srv.vals[k]; taken {
			return
		}
		s.srv.vals[k] = v
		if rec.Owner != "" {
			s.srv.sadd(s.oset(rec.Owner), key)
		}
	})
	if taken {
		return session.ErrExists
	}
	return nil
}

func (s *kvStore) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	var err error
	var old kvValue
	s.srv.do(func() { // a script: compare the version, SET, fix the owner sets
		raw, ok := s.srv.vals[s.skey(key)]
		if !ok {
			err = session.ErrNotFound
			return
		}
		old, _ = decode(raw)
		if old.Version != rec.Version {
			err = session.ErrConflict
			return
		}
		s.srv.vals[s.skey(key)] = encode(kvValue{Data: rec.Data, ATime: rec.ATime.UnixNano(), Created: old.Created, Version: old.Version + 1, Owner: rec.Owner})
		if s.bug == kvOwnerReindex {
			return
		}
		if old.Owner != rec.Owner && old.Owner != "" && s.bug != kvOwnerTrustIndex {
			s.srv.srem(s.oset(old.Owner), key)
		}
		if rec.Owner != "" {
			s.srv.sadd(s.oset(rec.Owner), key)
		}
	})
	if err == nil && s.bug == kvOwnerReindex {
		// Two more commands, outside the script: the set is briefly
		// without the key even when the owner did not change.
		if old.Owner != "" {
			s.srv.do(func() { s.srv.srem(s.oset(old.Owner), key) })
		}
		if rec.Owner != "" {
			s.srv.do(func() { s.srv.sadd(s.oset(rec.Owner), key) })
		}
	}
	return err
}

func (s *kvStore) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	found := false
	s.srv.do(func() { // a script: GET, SET with the new atime
		raw, ok := s.srv.vals[s.skey(key)]
		if !ok {
			return
		}
		found = true
		v, _ := decode(raw)
		v.ATime = atime.UnixNano()
		s.srv.vals[s.skey(key)] = encode(v)
	})
	if !found {
		return session.ErrNotFound
	}
	return nil
}

func (s *kvStore) Delete(ctx context.Context, key string) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	s.srv.do(func() { // a script: GET the owner, DEL, SREM
		raw, ok := s.srv.vals[s.skey(key)]
		if !ok {
			return
		}
		delete(s.srv.vals, s.skey(key))
		if v, _ := decode(raw); v.Owner != "" && s.bug != kvOwnerNotOnDelete {
			s.srv.srem(s.oset(v.Owner), key)
		}
	})
	return nil
}

func (s *kvStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	match := s.skey("")
	if s.bug == kvCleanupScanAll {
		match = ""
	}
	c := cutoff.UnixNano()
	n := 0
	for cursor := ""; ; {
		keys, next := s.srv.scan(cursor, match, 500) // SCAN cursor MATCH prefix* COUNT 500
		for _, k := range keys {
			if s.bug == kvCleanupGetThenDel {
				var raw string
				var ok bool
				s.srv.do(func() { raw, ok = s.srv.vals[k] }) // GET
				if v, _ := decode(raw); ok && v.ATime < c {
					s.srv.do(func() { delete(s.srv.vals, k) }) // DEL
					n++
				}
				continue
			}
			s.srv.do(func() { // a script: GET, DEL if idle, SREM
				raw, ok := s.srv.vals[k]
				if !ok {
					return
				}
				v, isRecord := decode(raw)
				if !isRecord || v.ATime >= c {
					return
				}
				delete(s.srv.vals, k)
				n++
				if v.Owner != "" && s.bug != kvOwnerNotOnCleanup {
					s.srv.srem(s.oset(v.Owner), strings.TrimPrefix(k, s.skey("")))
				}
			})
		}
		if next == "" {
			return n, nil
		}
		if err := ctx.Err(); err != nil {
			return n, err
		}
		cursor = next
	}
}

var _ session.OwnerIndex = (*kvStore)(nil)

func (s *kvStore) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	if !session.ValidKey(owner) {
		return nil, fmt.Errorf("kvstore: owner: %w", session.ErrInvalidKey)
	}
	var members []string
	s.srv.do(func() { // SMEMBERS
		for k := range s.srv.sets[s.oset(owner)] {
			members = append(members, k)
		}
	})
	trust := s.bug == kvOwnerTrustIndex || s.bug == kvOwnerNotOnDelete || s.bug == kvOwnerNotOnCleanup
	var out []session.OwnedRecord
	for _, k := range members {
		var raw string
		var ok bool
		s.srv.do(func() { raw, ok = s.srv.vals[s.skey(k)] }) // GET
		if !ok {
			continue
		}
		v, _ := decode(raw)
		if v.Owner != owner && !trust {
			continue // moved to another owner since SMEMBERS
		}
		out = append(out, session.OwnedRecord{Key: k, Record: v.record()})
	}
	return out, nil
}
