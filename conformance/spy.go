package conformance

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	session "github.com/websession/websession/core"
)

// spy wraps the store under test for the "Session/..." subtests. It
// records every call the manager makes (operation, key, data written or
// read, error) so that a subtest can assert "no store call", "no write",
// "the cookie never reached the store" and "no raw id anywhere", and it
// puts every call under OpTimeout and the watchdog.
type spy struct {
	inner session.Store
	s     *suite

	mu    sync.Mutex
	calls []spyCall
}

type spyCall struct {
	op   string
	key  string
	data []byte // written (Create, Update) or read (Load)
	err  error
}

func (c spyCall) String() string {
	if c.err != nil {
		return fmt.Sprintf("%s(%s) = %v", c.op, short(c.key), c.err)
	}
	return fmt.Sprintf("%s(%s)", c.op, short(c.key))
}

var _ session.Store = (*spy)(nil)

// record logs a call and returns its index in the log.
func (p *spy) record(op, key string, data []byte, err error) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, spyCall{op: op, key: key, data: bytes.Clone(data), err: err})
	return len(p.calls) - 1
}

// Load implements session.Store.
func (p *spy) Load(ctx context.Context, key string) (session.Record, error) {
	rec, err := call(p.s, ctx, "Load", func(ctx context.Context) (session.Record, error) { return p.inner.Load(ctx, key) })
	p.record("Load", key, rec.Data, err)
	return rec, err
}

// Create implements session.Store.
func (p *spy) Create(ctx context.Context, key string, rec session.Record) error {
	i := p.record("Create", key, rec.Data, nil)
	err := ctxCall(p.s, ctx, "Create", func(ctx context.Context) error { return p.inner.Create(ctx, key, rec) })
	p.setErr(i, err)
	return err
}

// Update implements session.Store.
func (p *spy) Update(ctx context.Context, key string, rec session.Record) error {
	i := p.record("Update", key, rec.Data, nil)
	err := ctxCall(p.s, ctx, "Update", func(ctx context.Context) error { return p.inner.Update(ctx, key, rec) })
	p.setErr(i, err)
	return err
}

// Touch implements session.Store.
func (p *spy) Touch(ctx context.Context, key string, atime time.Time) error {
	i := p.record("Touch", key, nil, nil)
	err := ctxCall(p.s, ctx, "Touch", func(ctx context.Context) error { return p.inner.Touch(ctx, key, atime) })
	p.setErr(i, err)
	return err
}

// Delete implements session.Store.
func (p *spy) Delete(ctx context.Context, key string) error {
	i := p.record("Delete", key, nil, nil)
	err := ctxCall(p.s, ctx, "Delete", func(ctx context.Context) error { return p.inner.Delete(ctx, key) })
	p.setErr(i, err)
	return err
}

// Cleanup implements session.Store.
func (p *spy) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	i := p.record("Cleanup", "", nil, nil)
	n, err := call(p.s, ctx, "Cleanup", func(ctx context.Context) (int, error) { return p.inner.Cleanup(ctx, cutoff) })
	p.setErr(i, err)
	return n, err
}

// setErr sets the error of call i. Writes are recorded before they run,
// so the log's order is the order in which they started.
func (p *spy) setErr(i int, err error) {
	if err == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[i].err = err
}

// mark returns a position in the call log.
func (p *spy) mark() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.calls)
}

// since returns the calls made after mark m.
func (p *spy) since(m int) []spyCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]spyCall(nil), p.calls[m:]...)
}

func (p *spy) all() []spyCall { return p.since(0) }

func count(calls []spyCall, ops ...string) int {
	n := 0
	for _, c := range calls {
		for _, op := range ops {
			if c.op == op {
				n++
			}
		}
	}
	return n
}

func describe(calls []spyCall) string {
	if len(calls) == 0 {
		return "no store calls"
	}
	parts := make([]string, len(calls))
	for i, c := range calls {
		parts[i] = c.String()
	}
	return strings.Join(parts, ", ")
}

// expectedErr reports whether err is one the manager expects a correct
// store to return in the flows of the session subtests.
func expectedErr(err error) bool {
	return err == nil || errors.Is(err, session.ErrNotFound) || errors.Is(err, session.ErrConflict)
}

// hostileProblem reports how a store call shows that the cookie value v
// reached the store as such: as a key, inside a key, or inside data.
// Keys must also be well-formed (session.ValidKey).
func hostileProblem(c spyCall, v string) string {
	if c.op != "Cleanup" && !session.ValidKey(c.key) {
		return fmt.Sprintf("%s was called with the invalid key %q", c.op, c.key)
	}
	if v == "" {
		return ""
	}
	if c.key == v {
		return fmt.Sprintf("%s was called with the cookie value itself as the key", c.op)
	}
	if len(v) >= 4 && strings.Contains(c.key, v) {
		return fmt.Sprintf("%s was called with a key containing the cookie value", c.op)
	}
	if len(v) >= 8 && bytes.Contains(c.data, []byte(v)) {
		return fmt.Sprintf("%s was given data containing the cookie value", c.op)
	}
	return ""
}

// rawIDForms returns the spellings under which a session id could leak:
// the cookie's base64url text and, decoded, its bytes raw, in hex and in
// standard base64.
func rawIDForms(id string) map[string][]byte {
	forms := map[string][]byte{"the id as the cookie carries it": []byte(id)}
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) < 16 {
		return forms
	}
	forms["the id's raw bytes"] = raw
	forms["the id's bytes in lower-case hex"] = []byte(hex.EncodeToString(raw))
	forms["the id's bytes in upper-case hex"] = []byte(strings.ToUpper(hex.EncodeToString(raw)))
	forms["the id's bytes in standard base64"] = []byte(base64.RawStdEncoding.EncodeToString(raw))
	return forms
}

// rawIDProblem reports whether haystack holds id in any of its forms.
func rawIDProblem(haystack []byte, id string) string {
	for name, form := range rawIDForms(id) {
		if bytes.Contains(haystack, form) {
			return name
		}
	}
	return ""
}

// ownerSpy is a spy over a store that implements session.OwnerIndex,
// passing LoadOwned on, so that the manager's owner operations work.
type ownerSpy struct {
	*spy
	oi session.OwnerIndex
}

// store returns p as the manager should see it: with LoadOwned if the
// store under test has it.
func (p *spy) store() session.Store {
	if oi, ok := p.inner.(session.OwnerIndex); ok {
		return &ownerSpy{spy: p, oi: oi}
	}
	return p
}

// LoadOwned implements session.OwnerIndex.
func (p *ownerSpy) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	recs, err := call(p.s, ctx, "LoadOwned", func(ctx context.Context) ([]session.OwnedRecord, error) { return p.oi.LoadOwned(ctx, owner) })
	p.record("LoadOwned", owner, nil, err)
	return recs, err
}
