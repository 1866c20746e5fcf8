package session

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"
)

type loadState uint8

const (
	unloaded loadState = iota
	existing           // loaded from the store
	fresh              // new, not stored yet
	failed             // loading failed; err says why
)

// load brings the session into existing, fresh or failed. s.mu is held.
func (s *Session) load() {
	if s.state != unloaded {
		return
	}
	if s.cookieID == "" {
		s.startFresh()
		return
	}
	m := s.m
	key := storeKey(s.cookieID)
	ctx, cancel := context.WithTimeout(s.req.Context(), m.cfg.storeTimeout)
	rec, err := m.store.Load(ctx, key)
	cancel()
	if err == nil {
		env, derr := decodeEnvelope(rec.Data)
		switch {
		case len(rec.Data) == 0:
			// A tombstone: a Regenerate is retiring this id.
			m.discard(s, key)
			err = ErrNotFound
		case derr != nil:
			// Not ours or damaged: never a 500 for this browser forever.
			m.log().WarnContext(s.req.Context(), "session: discarding undecodable session", "err", derr)
			m.discard(s, key)
			err = ErrNotFound
		case m.expired(rec, m.cfg.now()):
			m.discard(s, key)
			err = ErrNotFound
		case !m.cfg.ignoreChangeIP && !sameIP(env.ip, m.cfg.clientIP(s.req)):
			s.rejected = true
			s.startFresh()
			return
		default:
			s.state = existing
			s.id, s.key, s.ip, s.values = s.cookieID, key, env.ip, env.values
			s.rec = rec
			s.rec.Data = nil
			return
		}
	}
	if errors.Is(err, ErrNotFound) {
		s.rejected = !m.cfg.ignoreExpiry
		s.startFresh()
		return
	}
	s.state, s.err = failed, fmt.Errorf("session: load: %w", err)
}

// expired applies the idle timeout and the absolute lifetime. A record
// exactly timeout old is still valid, as Store.Cleanup keeps it.
func (m *Manager) expired(rec Record, now time.Time) bool {
	if now.Sub(rec.ATime) > m.cfg.timeout {
		return true
	}
	return m.cfg.lifetime > 0 && now.Sub(rec.Created) > m.cfg.lifetime
}

// discard deletes a record that load refused, best effort.
func (m *Manager) discard(s *Session, key string) {
	ctx, cancel := s.saveCtx()
	defer cancel()
	if err := m.store.Delete(ctx, key); err != nil {
		m.log().WarnContext(s.req.Context(), "session: deleting an expired session failed", "err", err)
	}
}

// sameIP compares a stored IP (a JSON string) with a client IP.
func sameIP(stored []byte, ip string) bool {
	s, err := unquote(stored)
	return err == nil && s == ip
}

// startFresh makes s a new session holding the initial values.
func (s *Session) startFresh() {
	m := s.m
	s.state = fresh
	s.id, s.key, s.rec = "", "", Record{}
	s.changes, s.cleared, s.regen, s.reads = nil, false, false, nil
	s.ip = appendJSONString(nil, m.cfg.clientIP(s.req))
	s.values = make(map[string]json.RawMessage, len(m.cfg.initializer))
	maps.Copy(s.values, m.cfg.initializer) // the raw values are never mutated in place
	if f := m.cfg.initializerFunc; f != nil {
		init, err := f(s.req)
		if err != nil {
			s.state, s.err = failed, fmt.Errorf("session: initializer: %w", err)
			return
		}
		for k, v := range init {
			raw, err := encodeValue(v)
			if err != nil {
				s.state, s.err = failed, fmt.Errorf("session: initializer value %q: %w", k, err)
				return
			}
			s.values[k] = raw
		}
	}
}

// ready loads s for a change and refuses changes after commit. s.mu is held.
func (s *Session) ready(op string) error {
	if s.done {
		err := fmt.Errorf("%w: %s", ErrCommitted, op)
		if s.late == nil {
			s.late = err
		}
		return err
	}
	s.load()
	return s.err
}

func (s *Session) change(key string, raw json.RawMessage) {
	for i := range s.changes {
		if s.changes[i].key == key {
			s.changes[i].raw = raw
			return
		}
	}
	if s.changes == nil {
		s.changes = s.chBuf[:0]
	}
	s.changes = append(s.changes, change{key, raw})
}
