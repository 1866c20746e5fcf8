package session

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

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
		return s.err
	}
	addVary(h) // the response may depend on the session
	m := s.m
	now := m.cfg.now()
	modified := s.cleared || len(s.changes) > 0
	switch {
	case s.state == fresh && !modified:
		if s.killed && s.hadCookie {
			m.writeDeletionCookie(h)
		}
		return nil
	case s.state == fresh:
		return s.insert(h, now, now, "")
	case s.regen:
		return s.insert(h, now, now, s.key)
	case modified:
		return s.update(h, now)
	default:
		return s.touch(h, now)
	}
}

// insert stores the session under a new id: a new session, or a
// regenerated one whose old record (oldKey) is then deleted.
func (s *Session) insert(h http.Header, now, created time.Time, oldKey string) error {
	m := s.m
	ctx := s.writeCtx()
	data := encodeEnvelope(nil, s.ip, s.values)
	if len(data) > m.cfg.maxDataSize {
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, len(data), m.cfg.maxDataSize)
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
		err := m.store.Create(ctx, key, Record{Data: data, ATime: now, Created: created})
		if errors.Is(err, ErrExists) && i+1 < attempts {
			s.id = "" // astronomically unlikely with 256 bits, unless the source of randomness is broken
			continue
		}
		if err != nil {
			return fmt.Errorf("session: create: %w", err)
		}
		if oldKey != "" {
			if err := m.store.Delete(ctx, oldKey); err != nil {
				// The old id must not stay valid beside the new one.
				if derr := m.store.Delete(ctx, key); derr != nil {
					m.log().ErrorContext(s.req.Context(), "session: regenerate: removing the new record failed", "err", derr)
				}
				return fmt.Errorf("session: regenerate: deleting the old record: %w", err)
			}
		}
		s.key, s.state, s.regen = key, existing, false
		s.rec = Record{ATime: now, Created: created, Version: 1}
		m.writeCookie(h, s.id)
		return nil
	}
}

// update saves this request's changes with optimistic concurrency. On a
// version conflict it reloads and re-applies only the keys this request
// changed, so overlapping requests that change different keys both keep
// their changes; for the same key, the request that saves last wins. If the
// record is gone (killed or cleaned meanwhile) nothing is re-created and no
// cookie is sent.
func (s *Session) update(h http.Header, now time.Time) error {
	m := s.m
	ctx := s.writeCtx()
	var buf []byte
	for attempt := 0; ; attempt++ {
		buf = encodeEnvelope(buf[:0], s.ip, s.values)
		if len(buf) > m.cfg.maxDataSize {
			return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, len(buf), m.cfg.maxDataSize)
		}
		err := m.store.Update(ctx, s.key, Record{Data: buf, ATime: now, Version: s.rec.Version})
		switch {
		case err == nil:
			s.rec.Version++
			s.rec.ATime = now
			if m.cfg.cookie.maxAge > 0 {
				m.writeCookie(h, s.id) // slide the persistent cookie
			}
			return nil
		case errors.Is(err, ErrNotFound):
			return nil // killed or expired meanwhile: it stays dead
		case errors.Is(err, ErrConflict) && attempt < 8:
			rec, lerr := m.store.Load(ctx, s.key)
			if errors.Is(lerr, ErrNotFound) {
				return nil
			}
			if lerr != nil {
				return fmt.Errorf("session: reload after conflict: %w", lerr)
			}
			env, derr := decodeEnvelope(rec.Data)
			if derr != nil {
				return fmt.Errorf("session: reload after conflict: %w", derr)
			}
			if m.expired(rec, now) {
				return nil
			}
			if s.cleared {
				clear(env.values)
			}
			for _, c := range s.changes {
				if c.raw == nil {
					delete(env.values, c.key)
				} else {
					env.values[c.key] = c.raw
				}
			}
			s.values, s.ip = env.values, env.ip
			s.rec = rec
			s.rec.Data = nil
		default:
			return fmt.Errorf("session: update: %w", err)
		}
	}
}

// touch records the access of a read-only request if the stored ATime is
// older than the touch interval. A failed touch only costs expiry accuracy,
// so it is logged, not turned into an error response.
func (s *Session) touch(h http.Header, now time.Time) error {
	m := s.m
	if now.Sub(s.rec.ATime) < m.cfg.touchInterval {
		return nil
	}
	err := m.store.Touch(s.writeCtx(), s.key, now)
	switch {
	case err == nil:
		s.rec.ATime = now
		if m.cfg.cookie.maxAge > 0 {
			m.writeCookie(h, s.id)
		}
	case errors.Is(err, ErrNotFound):
	default:
		m.log().WarnContext(s.req.Context(), "session: touch failed", "err", err)
	}
	return nil
}
