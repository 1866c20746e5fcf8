package session

import (
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
	// Usually one candidate. Several when the request carried several
	// cookies of our name (a sibling subdomain may have set one): the first
	// whose session exists wins, so a planted unknown id listed first
	// cannot push the user's real session out.
	for _, c := range s.cookies.list() {
		done, err := s.loadID(c.id)
		if err != nil {
			s.state, s.err = failed, fmt.Errorf("session: load: %w", err)
			return
		}
		if done {
			s.resign = s.state == existing && c.oldKey
			return
		}
	}
	s.rejected = s.cookies.n > 0 && !s.m.cfg.ignoreExpiry
	s.startFresh()
}

// loadID loads the session of one presented id. It reports done when the
// session is decided: loaded, or refused by the IP check; false when the
// id has no (valid) session.
func (s *Session) loadID(id string) (done bool, err error) {
	m := s.m
	key := storeKey(id)
	rec, err := m.store.Load(s.startCall(s.req.Context(), m.cfg.storeTimeout), key)
	s.endCall()
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	env, derr := decodeEnvelope(rec.Data)
	switch {
	case len(rec.Data) == 0:
		// A tombstone: a Regenerate is retiring this id.
		m.discard(s, key)
		return false, nil
	case derr != nil:
		// Not ours or damaged: never a 500 for this browser forever.
		m.log().WarnContext(s.req.Context(), "session: discarding undecodable session", "err", derr)
		m.discard(s, key)
		return false, nil
	case m.expired(rec, m.cfg.now()):
		m.discard(s, key)
		return false, nil
	case !m.cfg.ignoreChangeIP && !sameIP(env.ip, m.cfg.clientIP(s.req)):
		s.rejected = true
		s.startFresh()
		return true, nil
	}
	s.state = existing
	s.cookieID, s.id, s.key, s.values, s.meta = id, id, key, env.values, env.meta
	s.ip = env.ip
	if m.cfg.ignoreChangeIP {
		s.ip = noIP // and the next save drops a stored one
	}
	s.rec = rec
	s.rec.Data = nil
	return true, nil
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
	ctx := s.saveCtx()
	defer s.endCall()
	if err := m.store.Delete(ctx, key); err != nil {
		m.log().WarnContext(s.req.Context(), "session: deleting an expired session failed", "err", err)
	}
}

// noIP is the stored IP of a session whose IP nobody checks.
var noIP = []byte(`""`)

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
	s.meta, s.metaSet, s.ownerRd = sessionMeta{}, 0, nil
	s.ip = noIP
	if !m.cfg.ignoreChangeIP {
		// Kept only when WithIgnoreChangeIP(false) needs it: an IP is
		// personal data.
		s.ip = appendJSONString(nil, m.cfg.clientIP(s.req))
	}
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
		return fmt.Errorf("%w: %s", ErrCommitted, op)
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
