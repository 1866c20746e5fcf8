package session

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
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

	hadCookie bool      // the request carried a cookie of our name, valid or not
	cookies   cookieIDs // the valid ids the request presented
	cookieID  string    // the presented id whose session was loaded
	resign    bool      // that id came signed with a verify-only key

	mu       sync.Mutex
	state    loadState
	err      error // why loading failed; sticky
	rejected bool  // strict expiry or IP check refused the presented id

	id      string                     // current id; "" for a new session until one is needed
	key     string                     // store key of the loaded record
	rec     Record                     // loaded record's metadata (Data dropped)
	ip      []byte                     // client IP that created the session, as a JSON string
	meta    sessionMeta                // owner, labels, remember-me
	values  map[string]json.RawMessage // current values, each immutable once stored here
	changes []change                   // what this request changed since its last save, in order
	chBuf   [2]change                  // backing for changes: most requests change one or two keys
	cleared bool                       // Clear was called: start from empty on a retry
	metaSet metaFlags                  // which parts of meta this request changed
	reads   []readMark                 // values this request read before changing them, see rebase
	ownerRd *string                    // the owner as this request read it with Owner, if it did
	rdBuf   [2]readMark                // backing for reads

	killed        bool
	changedSaved  bool     // Update saved a change of this request already
	regen         bool     // Regenerate was called: new id at commit
	cookiePending bool     // a save gave the session a cookie to send (new id, sliding Max-Age)
	done          bool     // committed: further changes are refused
	wctx          detached // parent of the context of store writes, see saveCtx
	turn          saveReq  // this session's place in its save queue (see saveSlots)
	call          *callCtx // the context of the store call in progress
	callBuf       callCtx  // call's storage while no store watches it (see startCall)
}

// change is one key set (raw != nil) or deleted (raw == nil) by this request.
type change struct {
	key string
	raw json.RawMessage
}

// readMark is a value this request read from the stored session: raw as
// read, nil if the key was absent (a stored value is never nil).
type readMark struct {
	key string
	raw json.RawMessage
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
	s.noteRead(key, raw, ok)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoValue, key)
	}
	return raw, nil
}

// noteRead records that the request read key from the stored session, so
// that a save can tell whether that read went stale (see rebase). Reads
// of a new session, and of values this request wrote itself, are not
// recorded: no other request can have changed them.
func (s *Session) noteRead(key string, raw json.RawMessage, had bool) {
	if s.state != existing || s.cleared {
		return
	}
	for i := range s.changes {
		if s.changes[i].key == key {
			return
		}
	}
	for i := range s.reads {
		if s.reads[i].key == key {
			return
		}
	}
	if s.reads == nil {
		s.reads = s.rdBuf[:0]
	}
	if !had {
		raw = nil
	}
	s.reads = append(s.reads, readMark{key, raw})
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
	if n := encodedSize(s.ip, &s.meta, s.values); n > s.m.cfg.maxDataSize {
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
	case s.state == unloaded && s.cookies.n == 1:
		key = storeKey(s.cookies.first[0].id) // no need to load it, to delete it
	case s.state == unloaded && s.cookies.n > 1:
		if s.load(); s.state == existing { // which of them is the session?
			key = s.key
		}
	}
	if key != "" {
		err := s.m.store.Delete(s.saveCtx(), key)
		s.endCall()
		if err != nil {
			return fmt.Errorf("session: kill: %w", err)
		}
	}
	s.killed, s.err, s.cookiePending, s.changedSaved = true, nil, false, false
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

// Update changes the value under key with fn, atomically: fn receives the
// current value (the zero T if the session holds none) and returns the new
// one, which is saved at once, before Update returns, together with every
// change this request made before. If another request saved the session
// meanwhile, fn runs again on the value that request left, as many times
// as it takes, so concurrent increments are never lost. Update returns the
// value that was stored: show that one, not one computed before.
//
// Use Update for values computed from their previous value: counters,
// lists appended to, balances. Get followed by Set is safe too, in a
// weaker sense: if another request changed the value between this
// request's Get and its save, the save fails with ErrConflict (the client
// gets 409 and may retry) instead of overwriting that change with a value
// computed from the stale one; Update never fails that way.
//
// fn must be free of side effects, as it may run several times, and must
// not use the session (it runs under the session's lock). An error from
// fn ends Update with that error, saving nothing. Update fails with
// ErrConflict if a value this request read with Get has changed meanwhile
// (see the package documentation, "Concurrency"), and with ErrCommitted
// after the response was committed. Changes made after Update are saved
// when the response is committed, as usual.
func Update[T any](s *Session, key string, fn func(T) (T, error)) (T, error) {
	var zero T
	if s == nil {
		return zero, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("Update"); err != nil {
		return zero, err
	}
	op := &updateOp[T]{key: key, fn: fn}
	ctx := s.saveCtx()
	defer s.endCall()
	now := s.m.cfg.now()
	var err error
	if s.state == fresh {
		// Nothing stored can conflict with a new session: store it now,
		// under its new id, whose cookie the response will carry.
		if err = op.apply(s.values); err == nil {
			err = s.insert(ctx, now)
		}
	} else {
		err = s.save(ctx, now, op)
	}
	if err != nil {
		return zero, err
	}
	s.changedSaved = true
	return op.result, nil
}

// updater is an Update function to run on the values of each save attempt.
type updater interface {
	apply(values map[string]json.RawMessage) error
}

type updateOp[T any] struct {
	key    string
	fn     func(T) (T, error)
	result T
}

func (op *updateOp[T]) apply(values map[string]json.RawMessage) error {
	var v T
	if raw, ok := values[op.key]; ok {
		if err := decodeValue(raw, &v); err != nil {
			return fmt.Errorf("session: value %q: %w", op.key, err)
		}
	}
	v, err := op.fn(v)
	if err != nil {
		return err
	}
	raw, err := encodeValue(v)
	if err != nil {
		return fmt.Errorf("session: value %q: %w", op.key, err)
	}
	values[op.key] = raw
	op.result = v
	return nil
}
