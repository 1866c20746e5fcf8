package session

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Session is one request's view of a session. Get one with FromContext.
// Values are stored as JSON: Set encodes, Get decodes into the type asked
// for. The session is loaded from the store on first use and saved when the
// response is committed; only a changed session is written, and a new
// session nobody wrote into is never stored and gets no cookie.
//
// A Session is safe for concurrent use by the goroutines of one request.
// Every method of a nil *Session returns ErrNoSession.
type Session struct {
	m      *Manager
	req    *http.Request
	parent *Session       // the session of an outer manager, if any
	w      responseWriter // embedded to save an allocation per request

	hadCookie bool   // the request carried a cookie of our name, valid or not
	cookieID  string // the valid id the request presented, if any

	mu       sync.Mutex
	state    loadState
	err      error // why loading failed; sticky
	rejected bool  // strict expiry or IP check refused the presented id

	id      string                     // current id; "" for a new session until one is needed
	key     string                     // store key of the loaded record
	rec     Record                     // loaded record's metadata (Data dropped)
	ip      []byte                     // client IP that created the session, as a JSON string
	values  map[string]json.RawMessage // current values, each immutable once stored here
	changes []change                   // what this request changed, in order
	chBuf   [2]change                  // backing for changes: most requests change one or two keys
	cleared bool                       // Clear was called: start from empty on a retry
	killed  bool
	regen   bool // Regenerate was called: new id at commit
	done    bool // committed: further changes are late
	late    error
	wctx    detached // context of store writes, see writeCtx
}

// change is one key set (raw != nil) or deleted (raw == nil) by this request.
type change struct {
	key string
	raw json.RawMessage
}

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
	rec, err := m.store.Load(s.req.Context(), key)
	if err == nil {
		env, derr := decodeEnvelope(rec.Data)
		switch {
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
	if err := m.store.Delete(s.writeCtx(), key); err != nil {
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
	s.changes, s.cleared, s.regen = nil, false, false
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

// ID returns the session's id, the value its cookie carries (without a
// signature). A new session gets its id here or when first saved. ID
// returns "" if the session could not be loaded.
func (s *Session) ID() string {
	if s == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return ""
	}
	if s.id == "" {
		id, err := newID(s.m.cfg.rand)
		if err != nil {
			return ""
		}
		s.id = id
	}
	return s.id
}

// Get returns the value stored under key, decoded from JSON into a T. It
// returns ErrNoValue if the session holds no such key, and a
// *json.UnmarshalTypeError (wrapped) if the value does not fit a T.
// Numbers stored into an any come back as float64, as with encoding/json.
func Get[T any](s *Session, key string) (T, error) {
	var v T
	raw, err := s.lookup(key)
	if err != nil {
		return v, err
	}
	if err := decodeValue(raw, &v); err != nil {
		return v, fmt.Errorf("session: value %q: %w", key, err)
	}
	return v, nil
}

func (s *Session) lookup(key string) (json.RawMessage, error) {
	if s == nil {
		return nil, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return nil, s.err
	}
	raw, ok := s.values[key]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoValue, key)
	}
	return raw, nil
}

// Set stores v under key, encoded as JSON. Setting a value equal (in its
// JSON form) to the stored one is not a change. Set fails with ErrTooLarge,
// changing nothing, if the session would exceed the size limit, and with
// ErrCommitted after the response was committed.
func (s *Session) Set(key string, v any) error {
	if s == nil {
		return ErrNoSession
	}
	raw, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("session: value %q: %w", key, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("Set"); err != nil {
		return err
	}
	old, had := s.values[key]
	if had && bytes.Equal(old, raw) {
		return nil
	}
	s.values[key] = raw
	if n := encodedSize(s.ip, s.values); n > s.m.cfg.maxDataSize {
		if had {
			s.values[key] = old
		} else {
			delete(s.values, key)
		}
		return fmt.Errorf("%w: %d bytes encoded, limit %d", ErrTooLarge, n, s.m.cfg.maxDataSize)
	}
	s.change(key, raw)
	return nil
}

// Delete removes key from the session. Deleting a missing key is not a
// change.
func (s *Session) Delete(key string) error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("Delete"); err != nil {
		return err
	}
	if _, ok := s.values[key]; !ok {
		return nil
	}
	delete(s.values, key)
	s.change(key, nil)
	return nil
}

// Clear removes every value. The session keeps its id; use Kill to end it.
func (s *Session) Clear() error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("Clear"); err != nil {
		return err
	}
	if len(s.values) == 0 {
		return nil
	}
	clear(s.values)
	s.cleared, s.changes = true, s.changes[:0]
	return nil
}

// Kill ends the session (web.py: kill()): its record is deleted from the
// store at once, and the response tells the browser to drop the cookie.
// Nothing can bring the session back: a request still in flight on it
// cannot save into it again. After Kill, s is a new empty session (with the
// initial values); writing to it starts a session with a new id.
//
// Kill works after the response was committed too: the record is deleted,
// though the cookie can no longer be removed (the browser's next request
// then presents an unknown id).
func (s *Session) Kill() error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var key string
	switch {
	case s.state == existing:
		key = s.key
	case s.cookieID != "" && s.state != fresh:
		key = storeKey(s.cookieID) // never loaded: no need to, to delete it
	}
	if key != "" {
		if err := s.m.store.Delete(s.writeCtx(), key); err != nil {
			return fmt.Errorf("session: kill: %w", err)
		}
	}
	s.killed, s.err = true, nil
	s.startFresh()
	return nil
}

// Regenerate gives the session a new id, keeping its values, and deletes
// the record under the old id when the response is committed. Call it
// whenever privileges change, above all at login, so an id planted or
// seen before cannot ride into the authenticated session (fixation). It
// also restarts the absolute lifetime.
func (s *Session) Regenerate() error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("Regenerate"); err != nil {
		return err
	}
	id, err := newID(s.m.cfg.rand)
	if err != nil {
		return fmt.Errorf("session: regenerate: %w", err)
	}
	s.id = id
	if s.state == existing {
		s.regen = true
	}
	return nil
}

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

// encodeValue is json.Marshal with allocation-free paths for the common
// scalar types.
func encodeValue(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case int:
		return strconv.AppendInt(nil, int64(x), 10), nil
	case int64:
		return strconv.AppendInt(nil, x, 10), nil
	case bool:
		return strconv.AppendBool(nil, x), nil
	case string:
		return appendJSONString(nil, x), nil
	case json.RawMessage:
		if !json.Valid(x) {
			return nil, errors.New("invalid JSON in json.RawMessage")
		}
		var b bytes.Buffer
		if err := json.Compact(&b, x); err != nil {
			return nil, err
		}
		return b.Bytes(), nil
	}
	return json.Marshal(v)
}

// decodeValue is json.Unmarshal with allocation-free paths for the common
// scalar types; anything unusual falls through to encoding/json, which also
// produces the error messages.
func decodeValue(raw json.RawMessage, dst any) error {
	switch p := dst.(type) {
	case *int:
		if n, err := strconv.Atoi(string(raw)); err == nil {
			*p = n
			return nil
		}
	case *int64:
		if n, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
			*p = n
			return nil
		}
	case *bool:
		switch string(raw) {
		case "true":
			*p = true
			return nil
		case "false":
			*p = false
			return nil
		}
	case *string:
		if len(raw) >= 2 && raw[0] == '"' {
			v, err := unquote(raw)
			if err == nil {
				*p = v
			}
			return err
		}
	}
	return json.Unmarshal(raw, dst)
}
