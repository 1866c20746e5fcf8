package session

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"time"
)

// This file is the save algorithm; the package documentation's section
// "Concurrency" states what it guarantees.
//
// A request's changes (Set, Delete, Clear) and the keys it read (Get) form
// one unit. The unit is saved with a compare-and-swap on the version the
// request loaded. When another request saved first, the CAS fails: the
// session is reloaded, every key this request read is checked against the
// fresh values (one that changed means something this request computed may
// rest on a stale read: the unit fails with ErrConflict and nothing is
// written), then the request's changes are re-applied on the fresh values
// and the CAS is tried again. An Update function is re-run on the fresh
// value instead of being re-applied.
//
// Saves of one session inside one process never fight through the store
// (saveSlots): while one is written, the others queue; the first of them
// then writes them all, merged in arrival order, in one compare-and-swap
// on top of what the previous write left, kept in memory, without a
// reload. Only another process's saves cause conflicts; those retry with
// jittered backoff until the save's deadline (WithStoreTimeout).

// commit saves the session and sets the response headers it needs. It runs
// once, when the response is committed.
func (s *Session) commit(h http.Header) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	switch s.state {
	case unloaded:
		return nil // never used: no store call at all
	case failed:
		return nil // every method returned s.err to the handler, its owner
	}
	addVary(h) // the response may depend on the session
	m := s.m
	now := m.cfg.now()
	if s.state == fresh && !s.modified() {
		if s.killed && s.hadCookie {
			m.writeDeletionCookie(h)
		}
		return nil
	}
	var err error
	switch {
	case s.state == fresh:
		err = s.insert(s.saveCtx(), now)
	case s.regen:
		err = s.regenerate(s.saveCtx(), now)
	case s.modified():
		err = s.save(s.saveCtx(), now, nil)
	default:
		s.touch(now)
	}
	s.endCall()
	if err != nil {
		return err
	}
	if s.resign && s.state == existing {
		// Accepted through a verify-only key: re-sign with the current
		// one, so the old key can be retired without logging anyone out.
		s.cookiePending, s.resign = true, false
	}
	if s.cookiePending {
		s.cookiePending = false
		m.writeCookie(h, s.id, s.cookieMaxAge())
	}
	return nil
}

// cookieMaxAge is the Max-Age of this session's cookie: its own
// (RememberMe), or the manager's.
func (s *Session) cookieMaxAge() time.Duration {
	if s.meta.maxAge > 0 {
		return time.Duration(s.meta.maxAge) * time.Second
	}
	return s.m.cfg.cookie.maxAge
}

func (s *Session) modified() bool { return s.cleared || len(s.changes) > 0 || s.metaSet != 0 }

// metaFlags say which parts of a session's meta a request changed.
type metaFlags uint8

const (
	ownerSet metaFlags = 1 << iota
	labelsSet
	maxAgeSet
)

// saveCtx is the context of a save: the request's values without its
// cancellation (a change the handler decided is saved even if the client
// has gone), bounded by the store timeout. The caller ends it with
// s.endCall().
func (s *Session) saveCtx() context.Context {
	if s.wctx.Context == nil {
		s.wctx.Context = s.req.Context()
	}
	return s.startCall(&s.wctx, s.m.cfg.storeTimeout)
}

// settle marks the request's unit of changes as saved.
func (s *Session) settle() {
	s.changes, s.cleared, s.metaSet = s.changes[:0], false, 0
	s.reads, s.ownerRd = s.reads[:0], nil
}

// record is what a save writes: the encoded session and its owner key.
func (s *Session) record(data []byte, now time.Time) Record {
	return Record{Data: data, ATime: now, Created: now, Version: s.rec.Version, Owner: ownerKey(s.meta.owner)}
}

// insert stores the session under a new id (the one ID gave it, if any).
func (s *Session) insert(ctx context.Context, now time.Time) error {
	m := s.m
	data := encodeEnvelope(nil, s.ip, &s.meta, s.values)
	if len(data) > m.cfg.maxDataSize {
		return tooLarge(len(data), m.cfg.maxDataSize)
	}
	const attempts = 4
	for i := 0; ; i++ {
		if s.id == "" {
			id, err := newID(m.cfg.rand)
			if err != nil {
				return fmt.Errorf("session: new id: %w", err)
			}
			s.id = id
		}
		key := storeKey(s.id)
		err := m.store.Create(ctx, key, s.record(data, now))
		if errors.Is(err, ErrExists) && i+1 < attempts {
			s.id = "" // astronomically unlikely with 256 bits, unless the source of randomness is broken
			continue
		}
		if err != nil {
			return fmt.Errorf("session: create: %w", err)
		}
		s.key, s.state = key, existing
		s.rec = Record{ATime: now, Created: now, Version: 1}
		s.cookiePending = true
		s.settle()
		return nil
	}
}

// tombstone is the Data of a record being retired by Regenerate: a save
// that finds it knows the session has moved on, and a load treats it as
// absent. Non-nil, so that SQL stores bind an empty value, not NULL.
var tombstone = []byte{}

// regenerate moves the session to the id Regenerate chose. The new record
// is created first; then the old one is retired with a compare-and-swap on
// the version this request knows, so that a save another request made to
// the old record in between is carried over (or, if it invalidates what
// this request read, fails this one) instead of being lost; a save coming
// after the retirement finds the tombstone and fails with ErrConflict.
// Finally the old record is deleted. It takes the old record's turn alone.
func (s *Session) regenerate(ctx context.Context, now time.Time) error {
	m := s.m
	oldKey := s.key
	slot := m.slots.ref(oldKey)
	defer m.slots.unref(oldKey, slot)
	me := s.saveReq(nil, true)
	batch, err := slot.join(ctx, me)
	if err != nil {
		return fmt.Errorf("session: regenerate: %w", err)
	}
	defer slot.finish(batch)
	if slot.known && slot.rec.Version != s.rec.Version {
		if err := s.rebase(envelope{ip: slot.ip, meta: slot.meta, values: maps.Clone(slot.values)}, slot.rec); err != nil {
			return err
		}
	}
	slot.forget()
	old := s.rec
	// insert settles the unit; keep it, to re-apply it if the old record
	// moved on meanwhile.
	changes, cleared, reads := append([]change(nil), s.changes...), s.cleared, append([]readMark(nil), s.reads...)
	metaSet, ownerRd := s.metaSet, s.ownerRd
	if err := s.insert(ctx, now); err != nil {
		return err
	}
	newKey, newVersion := s.key, s.rec.Version
	dropNew := func(cause error) error {
		if err := m.store.Delete(ctx, newKey); err != nil {
			m.log().ErrorContext(s.req.Context(), "session: regenerate: removing the new record failed", "err", err)
		}
		s.cookiePending = false
		return cause
	}
	var buf []byte
	for attempt := 0; ; attempt++ {
		// Owner "" takes the old record out of its owner's index at once.
		err := m.store.Update(ctx, oldKey, Record{Data: tombstone, ATime: now, Version: old.Version})
		if err == nil {
			break
		}
		if errors.Is(err, ErrNotFound) {
			return dropNew(errEnded)
		}
		if !errors.Is(err, ErrConflict) {
			return dropNew(fmt.Errorf("session: regenerate: retiring the old record: %w", err))
		}
		// Another process saved into the old record after this request
		// loaded it: bring its changes over, as a save would.
		if err := backoff(ctx, attempt); err != nil {
			return dropNew(fmt.Errorf("session: regenerate: %w", err))
		}
		rec, env, err := m.reload(ctx, oldKey, now)
		if err != nil {
			return dropNew(err)
		}
		s.changes, s.cleared, s.reads, s.metaSet, s.ownerRd = changes, cleared, reads, metaSet, ownerRd
		if err := s.rebase(env, rec); err != nil {
			return dropNew(err)
		}
		old = s.rec
		buf = encodeEnvelope(buf[:0], s.ip, &s.meta, s.values)
		if len(buf) > m.cfg.maxDataSize {
			return dropNew(tooLarge(len(buf), m.cfg.maxDataSize))
		}
		next := s.record(buf, now)
		next.Version = newVersion
		if err := m.store.Update(ctx, newKey, next); err != nil {
			return dropNew(fmt.Errorf("session: regenerate: %w", err))
		}
		newVersion++
	}
	s.key, s.rec = newKey, Record{ATime: now, Created: now, Version: newVersion}
	s.regen = false
	s.settle()
	if err := m.store.Delete(ctx, oldKey); err != nil {
		// The tombstone already makes the old id unusable; cleanup removes it.
		m.log().WarnContext(s.req.Context(), "session: regenerate: deleting the retired record failed", "err", err)
	}
	return nil
}

// save writes the request's unit of changes to the existing record, and
// applies op (an Update function) last, re-running it on every retry. It
// waits for the session's turn in this process; the saves that queued
// behind another are written together, by the first of them (writeBatch).
func (s *Session) save(ctx context.Context, now time.Time, op updater) error {
	m := s.m
	slot := m.slots.ref(s.key)
	defer m.slots.unref(s.key, slot)
	me := s.saveReq(op, false)
	batch, err := slot.join(ctx, me)
	if err != nil {
		return fmt.Errorf("session: save: waiting for the other saves of this session: %w", err)
	}
	if batch != nil {
		m.writeBatch(ctx, now, slot, batch)
		slot.finish(batch)
	}
	return me.err
}

// saveReq readies the session's own request for its turn (no allocation:
// a session saves at most once at a time).
func (s *Session) saveReq(op updater, exclusive bool) *saveReq {
	r := &s.turn
	*r = saveReq{s: s, op: op, exclusive: exclusive}
	return r
}

// sessionState is a session as a batch builds it.
type sessionState struct {
	rec    Record // Data nil
	ip     []byte
	meta   sessionMeta
	values map[string]json.RawMessage
}

// writeBatch writes the saves of batch (batch[0] leads; its context bounds
// the work, and its deadline is the batch's earliest) as one
// compare-and-swap: each member's unit is applied in turn on top of the
// ones before it, as if they had run one after the other, and a member
// whose reads went stale fails alone. It sets each member's outcome.
func (m *Manager) writeBatch(ctx context.Context, now time.Time, slot *saveSlot, batch []*saveReq) {
	key := batch[0].s.key
	leader := batch[0].s
	// A member is out of the batch once its err is set.
	var st sessionState
	var buf []byte
	for attempt := 0; ; attempt++ {
		// The state to write: this attempt's base with every member still
		// in applied in turn (the leader's unit is already in its own
		// values when the base is its own, on a first attempt).
		switch {
		case attempt > 0:
			// st was reloaded below.
			m.applyAll(&st, batch, false)
		case slot.known && slot.rec.Version != leader.rec.Version:
			// This process saved since the leader loaded: start from that.
			st = sessionState{slot.rec, slot.ip, slot.meta, maps.Clone(slot.values)}
			m.applyAll(&st, batch, false)
		case len(batch) == 1:
			st = sessionState{leader.rec, leader.ip, leader.meta, leader.values}
			m.applyAll(&st, batch, true)
		default:
			st = sessionState{leader.rec, leader.ip, leader.meta, maps.Clone(leader.values)}
			m.applyAll(&st, batch, true)
		}
		if !anyLeft(batch) {
			break
		}
		if m.cfg.ignoreChangeIP {
			st.ip = noIP
		}
		buf = encodeEnvelope(buf[:0], st.ip, &st.meta, st.values)
		if len(buf) > m.cfg.maxDataSize {
			failAll(batch, tooLarge(len(buf), m.cfg.maxDataSize))
			break
		}
		err := m.store.Update(ctx, key, Record{Data: buf, ATime: now, Version: st.rec.Version, Owner: ownerKey(st.meta.owner)})
		if err == nil {
			st.rec.Version++
			st.rec.ATime = now
			for _, r := range batch {
				if r.err == nil {
					r.s.adopt(st, r.op != nil)
				}
			}
			slot.remember(st.rec, st.ip, st.meta, st.values)
			return
		}
		if errors.Is(err, ErrNotFound) {
			failAll(batch, errEnded)
			break
		}
		if !errors.Is(err, ErrConflict) {
			failAll(batch, fmt.Errorf("session: save: %w", err))
			break
		}
		// Another process saved: start again from what it wrote.
		slot.forget()
		if err := backoff(ctx, attempt); err != nil {
			failAll(batch, fmt.Errorf("session: save: %w (after %d version conflicts)", err, attempt+1))
			break
		}
		rec, env, err := m.reload(ctx, key, now)
		if err != nil {
			failAll(batch, err)
			break
		}
		st = sessionState{rec, env.ip, env.meta, env.values}
	}
	slot.forget()
}

// applyAll applies on st, in turn, the units of the members of batch still
// in it; a member whose reads went stale (or whose Update function fails)
// leaves the batch with that error. With pre, the first member's unit is
// already in st but its Update function.
func (m *Manager) applyAll(st *sessionState, batch []*saveReq, pre bool) {
	for i, r := range batch {
		if r.err != nil {
			continue
		}
		if pre && i == 0 {
			if r.op != nil {
				r.err = r.op.apply(st.values)
			}
			continue
		}
		r.err = r.s.applyTo(st, r.op)
	}
}

func anyLeft(batch []*saveReq) bool {
	for _, r := range batch {
		if r.err == nil {
			return true
		}
	}
	return false
}

// failAll ends every member still in batch with err.
func failAll(batch []*saveReq, err error) {
	for _, r := range batch {
		if r.err == nil {
			r.err = err
		}
	}
}

// adopt makes st, just saved, the session's: its unit is settled.
// private asks for a copy of the values, for a request that goes on.
func (s *Session) adopt(st sessionState, private bool) {
	s.values, s.ip, s.meta = st.values, st.ip, st.meta
	if private {
		s.values = maps.Clone(st.values)
	}
	s.rec = st.rec
	s.rec.Data = nil
	if s.cookieMaxAge() > 0 || s.metaSet&maxAgeSet != 0 {
		s.cookiePending = true // slide the persistent cookie, or send the new kind
	}
	s.settle()
}

// reload loads the record under key after a version conflict. A record
// gone, retired or expired means the session was ended meanwhile.
func (m *Manager) reload(ctx context.Context, key string, now time.Time) (Record, envelope, error) {
	rec, err := m.store.Load(ctx, key)
	if errors.Is(err, ErrNotFound) || err == nil && (len(rec.Data) == 0 || m.expired(rec, now)) {
		return rec, envelope{}, errEnded
	}
	if err != nil {
		return rec, envelope{}, fmt.Errorf("session: reload after a version conflict: %w", err)
	}
	env, err := decodeEnvelope(rec.Data)
	if err != nil {
		return rec, envelope{}, fmt.Errorf("session: reload after a version conflict: %w", err)
	}
	return rec, env, nil
}

// applyTo puts the request's unit on top of st, the session as other
// requests left it: it fails if a value this request read has changed
// since, and otherwise applies this request's changes, then op.
func (s *Session) applyTo(st *sessionState, op updater) error {
	if s.ownerRd != nil && *s.ownerRd != st.meta.owner {
		return &conflictError{key: "(owner)"}
	}
	for _, r := range s.reads {
		cur, ok := st.values[r.key]
		if ok != (r.raw != nil) || !bytes.Equal(cur, r.raw) {
			return &conflictError{key: r.key}
		}
	}
	if s.cleared {
		clear(st.values)
	}
	for _, c := range s.changes {
		if c.raw == nil {
			delete(st.values, c.key)
		} else {
			st.values[c.key] = c.raw
		}
	}
	if s.metaSet&ownerSet != 0 {
		st.meta.owner = s.meta.owner
	}
	if s.metaSet&labelsSet != 0 {
		st.meta.labels = s.meta.labels
	}
	if s.metaSet&maxAgeSet != 0 {
		st.meta.maxAge = s.meta.maxAge
	}
	if op != nil {
		return op.apply(st.values)
	}
	return nil
}

// rebase puts the request's unit on top of env, the session as another
// request left it (see applyTo); env's values become the session's.
func (s *Session) rebase(env envelope, rec Record) error {
	st := sessionState{rec, env.ip, env.meta, env.values}
	if err := s.applyTo(&st, nil); err != nil {
		return err
	}
	if s.m.cfg.ignoreChangeIP {
		st.ip = noIP
	}
	s.values, s.ip, s.meta = st.values, st.ip, st.meta
	s.rec = st.rec
	s.rec.Data = nil
	return nil
}

// backoff waits before the retry after the attempt-th conflict: not at
// all after the first (the other writer is most likely done), then a
// random time up to 1ms, 2ms, 4ms... capped at 64ms ("full jitter"), so
// that processes conflicting on one session fall out of step. It gives up
// when ctx ends.
func backoff(ctx context.Context, attempt int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if attempt == 0 {
		return nil
	}
	limit := time.Millisecond << min(attempt-1, 6)
	t := time.NewTimer(rand.N(limit) + 1)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// touch records the access of a read-only request if the stored ATime is
// older than the touch interval. A failed touch only costs expiry accuracy,
// so it is logged, not turned into an error response.
func (s *Session) touch(now time.Time) {
	m := s.m
	if now.Sub(s.rec.ATime) < m.cfg.touchInterval {
		return
	}
	err := m.store.Touch(s.saveCtx(), s.key, now)
	switch {
	case err == nil:
		s.rec.ATime = now
		if s.cookieMaxAge() > 0 {
			s.cookiePending = true
		}
	case errors.Is(err, ErrNotFound):
	default:
		m.log().WarnContext(s.req.Context(), "session: touch failed", "err", err)
	}
}

func tooLarge(n, limit int) error {
	return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, n, limit)
}

// conflictError is a save that could not land because of another request.
// It satisfies errors.Is(err, ErrConflict); one for a session ended
// meanwhile also satisfies errors.Is(err, ErrNotFound).
type conflictError struct {
	key   string // the value read by this request that changed, if that is why
	ended bool
}

var errEnded error = &conflictError{ended: true}

func (e *conflictError) Error() string {
	if e.ended {
		return "session: not saved: the session was ended (killed, regenerated or expired) by another request while this one ran"
	}
	return fmt.Sprintf("session: not saved: value %q, read by this request, was changed by another request before this one could save", e.key)
}

func (e *conflictError) Is(target error) bool {
	return target == ErrConflict || e.ended && target == ErrNotFound
}
