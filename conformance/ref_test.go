package conformance

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// refStore is the suite's own reference store: a correct Store (it must
// pass every subtest) whose instances over one namespace share a storage,
// like two processes over one database. Each broken store of the
// self-tests is this store with exactly one defect, switched on by bug.
type refStore struct {
	st   *storage
	bug  string
	prec time.Duration // stored times are truncated to it (a legitimate storage precision)
	ttl  time.Duration // read cache lifetime (a legitimate cache), 0 for none

	cmu   sync.Mutex
	cache map[string]cached

	closed atomic.Bool
}

// Close makes every later call fail with ErrClosed (unless the defect is
// to ignore it).
func (s *refStore) Close() error {
	s.closed.Store(true)
	return nil
}

type storage struct {
	mu sync.Mutex
	m  map[string]entry
	// owners is the owner index, kept by hand like a second table: owner
	// → key → a copy of the entry, updated by every write.
	owners     map[string]map[string]entry
	hideBefore time.Time // bugCleanupHides
	ops        int       // bugDataRace: counted without the lock
}

type entry struct {
	data           []byte
	atime, created time.Time
	version        uint64
	owner          string
}

type cached struct {
	rec session.Record
	at  time.Time
}

// The defects, one per broken store; defects describes each.
const (
	bugClockATime          = "clock-atime"
	bugClockCleanup        = "clock-cleanup"
	bugIgnoresVersion      = "ignores-version"
	bugNoVersionBump       = "no-version-bump"
	bugCreateKeepsVersion  = "create-keeps-version"
	bugUpdateSetsCreated   = "update-sets-created"
	bugUpdateCreates       = "update-creates"
	bugCreateOverwrites    = "create-overwrites"
	bugCreateExistsWrites  = "create-exists-writes"
	bugStaleUpdateWrites   = "stale-update-writes"
	bugTouchCreates        = "touch-creates"
	bugTouchBumpsVersion   = "touch-bumps-version"
	bugTouchNoop           = "touch-noop"
	bugUpdateNoop          = "update-noop"
	bugDeleteMissingErrs   = "delete-missing-errors"
	bugDeleteNoop          = "delete-noop"
	bugAliasSave           = "alias-save"
	bugAliasLoad           = "alias-load"
	bugRoundsUp            = "rounds-up"
	bugCoarserThanDeclared = "coarser-than-declared"
	bugLosesZone           = "loses-zone"
	bugCleanupBoundary     = "cleanup-boundary"
	bugCleanupMiscounts    = "cleanup-miscounts"
	bugCleanupHides        = "cleanup-hides"
	bugCleanupByCreated    = "cleanup-by-created"
	bugTruncatesLarge      = "truncates-large"
	bugTruncatesAtMax      = "truncates-at-max"
	bugStopsAtNUL          = "stops-at-nul"
	bugEmptyIsMissing      = "empty-is-missing"
	bugIgnoresCtx          = "ignores-ctx"
	bugCtxUnwrapped        = "ctx-unwrapped"
	bugNotShared           = "not-shared"
	bugStaleUndeclared     = "stale-undeclared"
	bugCachedVersionCheck  = "cached-version-check"
	bugRacyCreate          = "racy-create"
	bugRacyUpdate          = "racy-update"
	bugDataRace            = "data-race"
	bugHangs               = "hangs"
	bugPanics              = "panics"
	bugCloseIgnored        = "close-ignored"
	bugKeyCaseFold         = "key-case-fold"
	bugKeyTruncated        = "key-truncated"
	bugRejectsDashKeys     = "rejects-dash-keys"
	bugInvalidKeyUnwrapped = "invalid-key-unwrapped"
	bugLoadMissingNil      = "load-missing-nil"
	bugLeaksLock           = "leaks-lock"
	bugOwnerNotOnDelete    = "owner-index-not-on-delete"
	bugOwnerNotOnCleanup   = "owner-index-not-on-cleanup"
	bugOwnerNotOnChange    = "owner-index-not-on-change"
	bugOwnerStaleTouch     = "owner-index-stale-touch"
	bugOwnerAlias          = "owner-index-alias"
	bugOwnerDropped        = "owner-dropped"
	bugOwnerTouchClears    = "owner-touch-clears"
	bugOwnerUpdateKeeps    = "owner-update-keeps"
	bugOwnerUnknownErrs    = "owner-unknown-not-found"
	bugOwnerPrefix         = "owner-prefix-scan"
	bugOwnerAllNamespaces  = "owner-all-namespaces"
	bugOwnerInvalidPanics  = "owner-invalid-panics"
)

// defects says what each broken store does wrong.
var defects = map[string]string{
	bugClockATime:          "stamps ATime with time.Now(), like SQL now()",
	bugClockCleanup:        "Cleanup computes its own cutoff from time.Now()",
	bugIgnoresVersion:      "Update never compares versions",
	bugNoVersionBump:       "Update keeps the Version",
	bugCreateKeepsVersion:  "Create stores a non-zero rec.Version",
	bugUpdateSetsCreated:   "Update stores rec.Created",
	bugUpdateCreates:       "Update of a missing key inserts it (upsert)",
	bugCreateOverwrites:    "Create replaces a taken key and returns nil",
	bugCreateExistsWrites:  "Create returns ErrExists but overwrites the data",
	bugStaleUpdateWrites:   "Update returns ErrConflict but writes the data",
	bugTouchCreates:        "Touch of a missing key creates it",
	bugTouchBumpsVersion:   "Touch increments the Version",
	bugTouchNoop:           "Touch returns nil and stores nothing",
	bugUpdateNoop:          "Update returns nil and stores nothing",
	bugDeleteMissingErrs:   "Delete of a missing key returns ErrNotFound",
	bugDeleteNoop:          "Delete returns nil and deletes nothing",
	bugAliasSave:           "keeps the caller's Data slice",
	bugAliasLoad:           "Load returns the stored slice itself",
	bugRoundsUp:            "rounds times to the µs instead of truncating",
	bugCoarserThanDeclared: "keeps milliseconds, declares microseconds",
	bugLosesZone:           "keeps the wall clock, reads it back as UTC",
	bugCleanupBoundary:     "Cleanup also deletes ATime == cutoff",
	bugCleanupMiscounts:    "Cleanup returns how many records it examined",
	bugCleanupHides:        "Cleanup hides old records instead of deleting them",
	bugCleanupByCreated:    "Cleanup compares Created, not ATime",
	bugTruncatesLarge:      "cuts Data at 64 KiB",
	bugTruncatesAtMax:      "declares 4096 bytes, silently cuts there",
	bugStopsAtNUL:          "keeps Data up to its first NUL, like a C string",
	bugEmptyIsMissing:      "Load of a record with empty Data says ErrNotFound",
	bugIgnoresCtx:          "never looks at its context",
	bugCtxUnwrapped:        "reports cancellation without wrapping ctx.Err()",
	bugNotShared:           "each instance has its own storage",
	bugStaleUndeclared:     "caches reads but declares Staleness 0",
	bugCachedVersionCheck:  "Update checks the version against its cache",
	bugRacyCreate:          "Create checks, unlocks, then inserts",
	bugRacyUpdate:          "Update checks the version, unlocks, then writes",
	bugDataRace:            "counts calls in a shared field without the lock",
	bugHangs:               "Load blocks forever, ignoring its context",
	bugPanics:              "Touch of a missing key panics",
	bugCloseIgnored:        "keeps working after Close",
	bugKeyCaseFold:         "compares keys case-insensitively",
	bugKeyTruncated:        "keeps only 64 bytes of a key",
	bugRejectsDashKeys:     "refuses valid keys starting with '-'",
	bugInvalidKeyUnwrapped: "refuses invalid keys with its own error, not ErrInvalidKey",
	bugLoadMissingNil:      "Load of a missing key returns an empty record and a nil error",
	bugLeaksLock:           "Update returns ErrConflict with its lock still held",
	bugOwnerNotOnDelete:    "Delete leaves the record in the owner index",
	bugOwnerNotOnCleanup:   "Cleanup leaves what it deletes in the owner index",
	bugOwnerNotOnChange:    "Update to another owner leaves the record under the old owner too",
	bugOwnerStaleTouch:     "Touch does not refresh the owner index's copy",
	bugOwnerAlias:          "LoadOwned returns the index's Data slice itself",
	bugOwnerDropped:        "Create does not store the Owner",
	bugOwnerTouchClears:    "Touch writes the record back without its Owner",
	bugOwnerUpdateKeeps:    "Update keeps the old Owner",
	bugOwnerUnknownErrs:    "LoadOwned of an owner without records returns ErrNotFound",
	bugOwnerPrefix:         "LoadOwned scans for owners that start with the owner asked for",
	bugOwnerAllNamespaces:  "LoadOwned looks in every namespace of the process",
	bugOwnerInvalidPanics:  "LoadOwned of an empty owner key panics",
}

var (
	storagesMu sync.Mutex
	storages   = map[string]*storage{}
)

// newRefStore returns an instance over the namespace's storage.
func newRefStore(tb testing.TB, ns, bug string, prec, ttl time.Duration) *refStore {
	storagesMu.Lock()
	st, ok := storages[ns]
	if !ok || bug == bugNotShared {
		st = &storage{m: map[string]entry{}, owners: map[string]map[string]entry{}}
		storages[ns] = st
	}
	storagesMu.Unlock()
	tb.Cleanup(func() {
		storagesMu.Lock()
		delete(storages, ns)
		storagesMu.Unlock()
	})
	return &refStore{st: st, bug: bug, prec: prec, ttl: ttl, cache: map[string]cached{}}
}

var _ session.Store = (*refStore)(nil)

func (s *refStore) enter(ctx context.Context) error {
	if s.closed.Load() && s.bug != bugCloseIgnored {
		return fmt.Errorf("refstore: %w", session.ErrClosed)
	}
	switch s.bug {
	case bugIgnoresCtx:
		return nil
	case bugCtxUnwrapped:
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("refstore: operation aborted (%v)", err)
		}
		return nil
	case bugDataRace:
		s.st.ops++
	}
	return ctx.Err()
}

func (s *refStore) stamp(t time.Time) time.Time {
	switch s.bug {
	case bugRoundsUp:
		return t.Round(time.Microsecond)
	case bugCoarserThanDeclared:
		return t.Truncate(time.Millisecond)
	case bugLosesZone:
		return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
	}
	if s.prec > 0 {
		t = t.Truncate(s.prec)
	}
	return t.Round(0)
}

func (s *refStore) atime(t time.Time) time.Time {
	if s.bug == bugClockATime {
		return s.stamp(time.Now())
	}
	return s.stamp(t)
}

func (s *refStore) saveData(b []byte) []byte {
	switch s.bug {
	case bugAliasSave:
		return b
	case bugTruncatesLarge:
		b = b[:min(len(b), 64<<10)]
	case bugTruncatesAtMax:
		b = b[:min(len(b), 4096)]
	case bugStopsAtNUL:
		if i := bytes.IndexByte(b, 0); i >= 0 {
			b = b[:i]
		}
	}
	return bytes.Clone(b)
}

func (s *refStore) mapKey(key string) string {
	switch s.bug {
	case bugKeyCaseFold:
		return strings.ToLower(key)
	case bugKeyTruncated:
		return key[:min(len(key), 64)]
	}
	return key
}

// get returns the live entry under key; st.mu is held.
func (s *refStore) get(key string) (entry, bool) {
	e, ok := s.st.m[key]
	if ok && s.bug == bugCleanupHides && e.atime.Before(s.st.hideBefore) {
		return entry{}, false
	}
	return e, ok
}

func (e entry) record(alias bool) session.Record {
	data := e.data
	if !alias {
		data = bytes.Clone(data)
		if data == nil {
			data = []byte{}
		}
	}
	return session.Record{Data: data, ATime: e.atime, Created: e.created, Version: e.version, Owner: e.owner}
}

func (s *refStore) cached(key string) (session.Record, bool) {
	if s.ttl == 0 {
		return session.Record{}, false
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	c, ok := s.cache[key]
	if !ok || time.Since(c.at) >= s.ttl {
		return session.Record{}, false
	}
	rec := c.rec
	rec.Data = bytes.Clone(rec.Data)
	return rec, true
}

func (s *refStore) fill(key string, e entry) {
	if s.ttl == 0 {
		return
	}
	s.cmu.Lock()
	defer s.cmu.Unlock()
	s.cache[key] = cached{rec: e.record(false), at: time.Now()}
}

func (s *refStore) evict(key string) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	delete(s.cache, key)
}

func (s *refStore) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.enter(ctx); err != nil {
		return session.Record{}, err
	}
	if s.bug == bugHangs {
		select {}
	}
	key = s.mapKey(key)
	if rec, ok := s.cached(key); ok {
		return rec, nil
	}
	s.st.mu.Lock()
	e, ok := s.get(key)
	s.st.mu.Unlock()
	if !ok && s.bug == bugLoadMissingNil {
		return session.Record{}, nil
	}
	if !ok || s.bug == bugEmptyIsMissing && len(e.data) == 0 {
		return session.Record{}, session.ErrNotFound
	}
	s.fill(key, e)
	return e.record(s.bug == bugAliasLoad), nil
}

func (s *refStore) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	if !session.ValidKey(key) || s.bug == bugRejectsDashKeys && key[0] == '-' {
		if s.bug == bugInvalidKeyUnwrapped {
			return fmt.Errorf("refstore: key %q is not base64url", key)
		}
		return session.ErrInvalidKey
	}
	key = s.mapKey(key)
	e := entry{data: s.saveData(rec.Data), atime: s.atime(rec.ATime), created: s.stamp(rec.Created), version: 1, owner: rec.Owner}
	if s.bug == bugOwnerDropped {
		e.owner = ""
	}
	if s.bug == bugCreateKeepsVersion && rec.Version != 0 {
		e.version = rec.Version
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	if _, taken := s.st.m[key]; taken {
		switch s.bug {
		case bugCreateOverwrites:
			s.st.m[key] = e
			s.evict(key)
			return nil
		case bugCreateExistsWrites:
			old := s.st.m[key]
			old.data = e.data
			s.st.m[key] = old
		}
		return session.ErrExists
	}
	if s.bug == bugRacyCreate {
		s.st.mu.Unlock()
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
		s.st.mu.Lock()
	}
	s.st.m[key] = e
	s.st.index(key, e)
	s.fill(key, e)
	return nil
}

func (s *refStore) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	key = s.mapKey(key)
	data := s.saveData(rec.Data)
	cachedRec, isCached := s.cached(key)
	s.st.mu.Lock()
	leaked := false
	defer func() {
		if !leaked {
			s.st.mu.Unlock()
		}
	}()
	e, ok := s.get(key)
	if !ok {
		if s.bug == bugUpdateCreates {
			e = entry{data: data, atime: s.atime(rec.ATime), created: s.stamp(rec.Created), version: rec.Version + 1}
			s.st.m[key] = e
			s.fill(key, e)
			return nil
		}
		return session.ErrNotFound
	}
	stored := e.version
	if s.bug == bugCachedVersionCheck && isCached {
		stored = cachedRec.Version
	}
	if stored != rec.Version && s.bug != bugIgnoresVersion {
		if s.bug == bugStaleUpdateWrites {
			e.data = data
			s.st.m[key] = e
		}
		leaked = s.bug == bugLeaksLock
		return session.ErrConflict
	}
	if s.bug == bugRacyUpdate {
		s.st.mu.Unlock()
		runtime.Gosched()
		time.Sleep(50 * time.Microsecond)
		s.st.mu.Lock()
		e, ok = s.get(key)
		if !ok {
			return session.ErrNotFound
		}
	}
	if s.bug == bugUpdateNoop {
		return nil
	}
	oldOwner := e.owner
	e.data, e.atime = data, s.atime(rec.ATime)
	if s.bug != bugOwnerUpdateKeeps {
		e.owner = rec.Owner
	}
	if s.bug != bugNoVersionBump {
		e.version++
	}
	if s.bug == bugUpdateSetsCreated {
		e.created = s.stamp(rec.Created)
	}
	s.st.m[key] = e
	if oldOwner != e.owner && s.bug != bugOwnerNotOnChange {
		s.st.unindex(key, oldOwner)
	}
	s.st.index(key, e)
	s.fill(key, e)
	return nil
}

func (s *refStore) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	key = s.mapKey(key)
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	e, ok := s.get(key)
	if !ok {
		switch s.bug {
		case bugTouchCreates:
			s.st.m[key] = entry{data: []byte{}, atime: s.atime(atime), created: s.stamp(atime), version: 1}
			return nil
		case bugPanics:
			var missing map[string]entry
			missing[key] = e // assignment to a nil map: a driver bug that panics
		}
		return session.ErrNotFound
	}
	if s.bug == bugTouchNoop {
		return nil
	}
	e.atime = s.atime(atime)
	if s.bug == bugTouchBumpsVersion {
		e.version++
	}
	if s.bug == bugOwnerTouchClears {
		s.st.unindex(key, e.owner)
		e.owner = ""
	}
	s.st.m[key] = e
	if s.bug != bugOwnerStaleTouch {
		s.st.index(key, e)
	}
	s.fill(key, e)
	return nil
}

func (s *refStore) Delete(ctx context.Context, key string) error {
	if err := s.enter(ctx); err != nil {
		return err
	}
	key = s.mapKey(key)
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	e, ok := s.get(key)
	if !ok && s.bug == bugDeleteMissingErrs {
		return session.ErrNotFound
	}
	if s.bug == bugDeleteNoop {
		return nil
	}
	delete(s.st.m, key)
	if s.bug != bugOwnerNotOnDelete {
		s.st.unindex(key, e.owner)
	}
	s.evict(key)
	return nil
}

func (s *refStore) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	if err := s.enter(ctx); err != nil {
		return 0, err
	}
	if s.bug == bugClockCleanup {
		cutoff = time.Now().Add(-24 * time.Hour)
	}
	s.st.mu.Lock()
	defer s.st.mu.Unlock()
	n, examined := 0, len(s.st.m)
	for k, e := range s.st.m {
		t := e.atime
		if s.bug == bugCleanupByCreated {
			t = e.created
		}
		old := t.Before(cutoff)
		if s.bug == bugCleanupBoundary {
			old = !t.After(cutoff)
		}
		if !old {
			continue
		}
		if s.bug == bugCleanupHides {
			if !e.atime.Before(s.st.hideBefore) {
				n++
			}
			continue
		}
		delete(s.st.m, k)
		if s.bug != bugOwnerNotOnCleanup {
			s.st.unindex(k, e.owner)
		}
		n++
	}
	if s.bug == bugCleanupHides {
		s.st.hideBefore = cutoff
	}
	s.cmu.Lock()
	clear(s.cache)
	s.cmu.Unlock()
	if s.bug == bugCleanupMiscounts {
		return examined, nil
	}
	return n, nil
}

// index puts e into its owner's index under key; st.mu is held.
func (st *storage) index(key string, e entry) {
	if e.owner == "" {
		return
	}
	m := st.owners[e.owner]
	if m == nil {
		m = map[string]entry{}
		st.owners[e.owner] = m
	}
	m[key] = e
}

// unindex removes key from owner's index; st.mu is held.
func (st *storage) unindex(key, owner string) {
	if m := st.owners[owner]; m != nil {
		delete(m, key)
		if len(m) == 0 {
			delete(st.owners, owner)
		}
	}
}

var _ session.OwnerIndex = (*refStore)(nil)

// LoadOwned implements session.OwnerIndex from the index.
func (s *refStore) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := s.enter(ctx); err != nil {
		return nil, err
	}
	if s.bug == bugOwnerInvalidPanics {
		_ = owner[0] // "the manager never passes an empty owner"
	}
	if !session.ValidKey(owner) {
		return nil, fmt.Errorf("refstore: owner %q: %w", owner, session.ErrInvalidKey)
	}
	var out []session.OwnedRecord
	collect := func(st *storage) {
		st.mu.Lock()
		defer st.mu.Unlock()
		if s.bug == bugOwnerPrefix {
			for k, e := range st.m {
				if strings.HasPrefix(e.owner, owner) {
					out = append(out, session.OwnedRecord{Key: k, Record: e.record(false)})
				}
			}
			return
		}
		for k, e := range st.owners[owner] {
			out = append(out, session.OwnedRecord{Key: k, Record: e.record(s.bug == bugOwnerAlias)})
		}
	}
	if s.bug == bugOwnerAllNamespaces {
		storagesMu.Lock()
		all := make([]*storage, 0, len(storages))
		for _, st := range storages {
			all = append(all, st)
		}
		storagesMu.Unlock()
		for _, st := range all {
			collect(st)
		}
	} else {
		collect(s.st)
	}
	if len(out) == 0 && s.bug == bugOwnerUnknownErrs {
		return nil, fmt.Errorf("refstore: owner %q: %w", owner, session.ErrNotFound)
	}
	return out, nil
}

// refHarness is the Harness of a reference store with the given defect.
func refHarness(bug string, prec, ttl time.Duration) Harness {
	return Harness{
		NewStore: func(tb testing.TB, ns string) session.Store {
			return newRefStore(tb, ns, bug, prec, ttl)
		},
		Precision: prec,
		Staleness: 10 * ttl,
	}
}
