package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"time"
	"unicode/utf8"
)

// Owners: a session can be bound to an owner, an opaque string the
// application chooses (a user id), so that the owner's sessions can be
// listed and ended from anywhere: "where am I signed in", "sign out every
// other device" (OWASP ASVS V7.4, V7.5). The store keeps an index from
// owner to sessions (OwnerIndex), so that costs what the owner has, never
// what the store holds.

// Limits of the descriptive labels of a session (SetLabel).
const (
	MaxLabels   = 8
	MaxLabelLen = 256
)

// ownerKey is the key under which stores index an owner's sessions: a hash
// of the owner, in the store-key alphabet, so that an owner string (any
// bytes) never reaches a path, a query or a Redis key, and a leaked index
// names no user. "" for no owner.
func ownerKey(owner string) string {
	if owner == "" {
		return ""
	}
	sum := sha256.Sum256([]byte("websession owner\x00" + owner))
	return b64.EncodeToString(sum[:])
}

// handleOf is the handle of the session under store key: stable, opaque,
// and neither the id nor the store key, so it cannot be used as a cookie or
// to load the session.
func handleOf(key string) string {
	sum := sha256.Sum256([]byte("websession handle\x00" + key))
	return b64.EncodeToString(sum[:16])
}

// SetOwner binds the session to owner (typically the user id, at login,
// together with Regenerate), or unbinds it with "". The binding is saved
// with the session's other changes, in the same store write, survives
// Regenerate and is dropped by Kill. Manager.Sessions lists an owner's
// sessions.
func (s *Session) SetOwner(owner string) error {
	if s == nil {
		return ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("SetOwner"); err != nil {
		return err
	}
	if s.meta.owner != owner {
		s.meta.owner = owner
		s.metaSet |= ownerSet
	}
	return nil
}

// Owner returns the owner the session is bound to, or "".
func (s *Session) Owner() (string, error) {
	if s == nil {
		return "", ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	if s.err != nil {
		return "", s.err
	}
	if s.state == existing && s.metaSet&ownerSet == 0 && s.ownerRd == nil {
		// A read, like Get's: a save is refused if another request
		// changed the owner meanwhile.
		owner := s.meta.owner
		s.ownerRd = &owner
	}
	return s.meta.owner, nil
}

// SetLabel sets a descriptive label of the session, shown in owner
// listings (SessionInfo.Labels), such as "device": "Firefox on Linux".
// Labels are for the user to recognize a session; they are not values
// (Get does not see them). An empty value removes the label. At most
// MaxLabels labels of at most MaxLabelLen bytes of UTF-8 each.
func (s *Session) SetLabel(name, value string) error {
	if s == nil {
		return ErrNoSession
	}
	if name == "" || len(name) > MaxLabelLen || len(value) > MaxLabelLen || !utf8.ValidString(name) || !utf8.ValidString(value) {
		return fmt.Errorf("session: invalid label %q: 1 to %d bytes of UTF-8, value at most %d", name, MaxLabelLen, MaxLabelLen)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("SetLabel"); err != nil {
		return err
	}
	old, had := s.meta.labels[name]
	if value == old && (had || value == "") {
		return nil
	}
	labels := make(map[string]string, len(s.meta.labels)+1) // labels are shared, never changed in place
	for k, v := range s.meta.labels {
		labels[k] = v
	}
	if value == "" {
		delete(labels, name)
	} else {
		labels[name] = value
	}
	if len(labels) > MaxLabels {
		return fmt.Errorf("session: label %q: at most %d labels", name, MaxLabels)
	}
	s.meta.labels = labels
	s.metaSet |= labelsSet
	return nil
}

// RememberMe makes this session's cookie persistent, with Max-Age d
// (rounded down to whole seconds), from this response on: the "remember
// me" box at login. 0 goes back to the manager's cookie (a browser-session
// cookie unless WithMaxAge). It changes only the cookie: the session still
// expires after the manager's idle timeout, so a site that offers "remember
// me for 30 days" sets WithTimeout to 30 days and lets sessions without it
// end with the browser.
func (s *Session) RememberMe(d time.Duration) error {
	if s == nil {
		return ErrNoSession
	}
	if d < 0 || (d > 0 && d < time.Second) {
		return fmt.Errorf("session: invalid remember-me max-age %v: 0 or at least 1s", d)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready("RememberMe"); err != nil {
		return err
	}
	secs := int64(d / time.Second)
	if s.meta.maxAge != secs {
		s.meta.maxAge = secs
		s.metaSet |= maxAgeSet
	}
	return nil
}

// Status is what a request has done to its session so far.
type Status uint8

const (
	// StatusNew: a new session nobody has written to; it is not stored,
	// and gets no cookie unless something is written.
	StatusNew Status = iota
	// StatusLoaded: loaded from the store, unchanged by this request.
	StatusLoaded
	// StatusChanged: this request changed the session (saved when the
	// response is committed, or already, by Update).
	StatusChanged
	// StatusKilled: this request killed the session, and wrote nothing
	// into the new one since.
	StatusKilled
)

func (st Status) String() string {
	switch st {
	case StatusNew:
		return "new"
	case StatusLoaded:
		return "loaded"
	case StatusChanged:
		return "changed"
	case StatusKilled:
		return "killed"
	}
	return fmt.Sprintf("Status(%d)", uint8(st))
}

// Status loads the session if needed and reports what the request has
// done to it so far.
func (s *Session) Status() (Status, error) {
	if s == nil {
		return StatusNew, ErrNoSession
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.load()
	switch {
	case s.err != nil:
		return StatusNew, s.err
	case s.modified() || s.changedSaved:
		return StatusChanged, nil
	case s.killed && s.state == fresh:
		return StatusKilled, nil
	case s.state == fresh:
		return StatusNew, nil
	}
	return StatusLoaded, nil
}

// Pop returns the value under key and deletes it: a flash message, shown
// once. Set it in one request ("saved!"), Pop it on the next page. If two
// requests Pop the same value at once, only one of them saves; the other
// fails with ErrConflict (409), so a flash is never shown twice.
func Pop[T any](s *Session, key string) (T, error) {
	v, err := Get[T](s, key)
	if err != nil {
		return v, err
	}
	return v, s.Delete(key)
}

// SessionInfo describes one session of an owner, for a "where you're
// signed in" page.
type SessionInfo struct {
	// Handle identifies the session to EndSession. It is stable, and is
	// neither the session id nor usable as a cookie.
	Handle string
	// Created is when the session was created (or last regenerated);
	// LastSeen is its last recorded access (up to the touch interval old).
	Created, LastSeen time.Time
	// Current reports whether this is the session of the request whose
	// context was passed.
	Current bool
	// Labels are what SetLabel gave the session.
	Labels map[string]string
}

// ErrNoSuchSession is returned by EndSession for a handle that names none
// of the owner's live sessions.
var ErrNoSuchSession = errors.New("session: no such session of this owner")

func (m *Manager) ownerIndex() (OwnerIndex, error) {
	ix, ok := m.store.(OwnerIndex)
	if !ok {
		return nil, fmt.Errorf("%w (store %T)", ErrNoOwnerIndex, m.store)
	}
	return ix, nil
}

// owned lists the live sessions of owner with their store keys; ctx's
// session of m, if any, tells which is current.
func (m *Manager) owned(ctx context.Context, owner string) ([]SessionInfo, []string, error) {
	ix, err := m.ownerIndex()
	if err != nil {
		return nil, nil, err
	}
	if owner == "" {
		return nil, nil, errors.New("session: empty owner")
	}
	cctx, cancel := context.WithTimeout(ctx, m.cfg.storeTimeout)
	defer cancel()
	recs, err := ix.LoadOwned(cctx, ownerKey(owner))
	if err != nil {
		return nil, nil, fmt.Errorf("session: listing the sessions of an owner: %w", err)
	}
	current := ""
	if s := m.FromContext(ctx); s != nil {
		s.mu.Lock()
		if s.state == existing {
			current = s.key
		}
		s.mu.Unlock()
	}
	now := m.cfg.now()
	var infos []SessionInfo
	var keys []string
	for _, r := range recs {
		if len(r.Record.Data) == 0 || m.expired(r.Record, now) {
			continue // retired by a Regenerate, or expired: not a live session
		}
		env, err := decodeEnvelope(r.Record.Data)
		if err != nil || env.meta.owner != owner {
			continue // not ours, or (a hash collision away) another owner's
		}
		infos = append(infos, SessionInfo{
			Handle:   handleOf(r.Key),
			Created:  r.Record.Created,
			LastSeen: r.Record.ATime,
			Current:  r.Key == current,
			Labels:   env.meta.labels,
		})
		keys = append(keys, r.Key)
	}
	return infos, keys, nil
}

// Sessions lists the live sessions of owner, most recently seen first.
// ctx is usually the request's: the session of that request is marked
// Current. It costs one store call (OwnerIndex.LoadOwned), whose cost
// grows with the owner's sessions only. It fails with ErrNoOwnerIndex if
// the store does not implement OwnerIndex.
func (m *Manager) Sessions(ctx context.Context, owner string) ([]SessionInfo, error) {
	infos, _, err := m.owned(ctx, owner)
	slices.SortStableFunc(infos, func(a, b SessionInfo) int { return b.LastSeen.Compare(a.LastSeen) })
	return infos, err
}

// EndSession ends the session of owner with the given handle (from
// Sessions), as Kill would: its record is deleted at once, and no request
// in flight, in any process, can bring it back. Ending the current
// request's own session kills it, so its response drops the cookie. It
// returns ErrNoSuchSession if owner has no live session with that handle.
func (m *Manager) EndSession(ctx context.Context, owner, handle string) error {
	infos, keys, err := m.owned(ctx, owner)
	if err != nil {
		return err
	}
	for i, info := range infos {
		if info.Handle == handle {
			return m.end(ctx, keys[i], info.Current)
		}
	}
	return ErrNoSuchSession
}

// EndSessions ends every live session of owner, or every one but the
// current request's with keepCurrent (after a password change: "sign out
// everywhere else"), and returns how many it ended. Sessions of the owner
// created while it runs may survive it.
func (m *Manager) EndSessions(ctx context.Context, owner string, keepCurrent bool) (int, error) {
	infos, keys, err := m.owned(ctx, owner)
	if err != nil {
		return 0, err
	}
	n := 0
	for i, info := range infos {
		if info.Current && keepCurrent {
			continue
		}
		if err := m.end(ctx, keys[i], info.Current); err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}

func (m *Manager) end(ctx context.Context, key string, current bool) error {
	if current {
		if s := m.FromContext(ctx); s != nil {
			return s.Kill()
		}
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.cfg.storeTimeout)
	defer cancel()
	if err := m.store.Delete(cctx, key); err != nil {
		return fmt.Errorf("session: ending a session: %w", err)
	}
	return nil
}
