package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/gorilla/sessions"
	session "github.com/websession/websession/core"
)

// calls counts a store's calls, split into reads and writes. Each counter
// has a cache line of its own so that parallel benchmarks pay for true
// sharing only, the same for every library.
type calls struct {
	reads   atomic.Int64
	_       [56]byte
	writes  atomic.Int64
	_       [56]byte
	touches atomic.Int64 // ours only: the writes that were Touch
	_       [56]byte
}

// callCount is a snapshot of calls.
type callCount struct{ reads, writes, touches int64 }

func (c *calls) snapshot() callCount {
	return callCount{c.reads.Load(), c.writes.Load(), c.touches.Load()}
}

func (a callCount) sub(b callCount) callCount {
	return callCount{a.reads - b.reads, a.writes - b.writes, a.touches - b.touches}
}

func (a callCount) String() string {
	return fmt.Sprintf("%d reads, %d writes (%d touches)", a.reads, a.writes, a.touches)
}

// countingStore wraps one of our stores. Reads are Load; writes are
// Create, Update, Touch and Delete. Cleanup is not counted (the managers
// here run none).
type countingStore struct {
	session.Store
	c *calls
}

func (s countingStore) Load(ctx context.Context, key string) (session.Record, error) {
	s.c.reads.Add(1)
	return s.Store.Load(ctx, key)
}

func (s countingStore) Create(ctx context.Context, key string, rec session.Record) error {
	s.c.writes.Add(1)
	return s.Store.Create(ctx, key, rec)
}

func (s countingStore) Update(ctx context.Context, key string, rec session.Record) error {
	s.c.writes.Add(1)
	return s.Store.Update(ctx, key, rec)
}

func (s countingStore) Touch(ctx context.Context, key string, atime time.Time) error {
	s.c.writes.Add(1)
	s.c.touches.Add(1)
	return s.Store.Touch(ctx, key, atime)
}

func (s countingStore) Delete(ctx context.Context, key string) error {
	s.c.writes.Add(1)
	return s.Store.Delete(ctx, key)
}

// countingSCS wraps an scs.Store. Reads are Find; writes are Commit and
// Delete. It implements only scs.Store: newCountingSCS refuses a store that
// also implements the context-taking methods, which scs would call instead
// and which this wrapper would hide.
type countingSCS struct {
	inner scs.Store
	c     *calls
}

func newCountingSCS(inner scs.Store, c *calls) (countingSCS, error) {
	if _, ok := inner.(scs.CtxStore); ok {
		return countingSCS{}, fmt.Errorf("%T implements scs.CtxStore; the counting wrapper would hide it", inner)
	}
	return countingSCS{inner, c}, nil
}

func (s countingSCS) Find(token string) ([]byte, bool, error) {
	s.c.reads.Add(1)
	return s.inner.Find(token)
}

func (s countingSCS) Commit(token string, b []byte, expiry time.Time) error {
	s.c.writes.Add(1)
	return s.inner.Commit(token, b, expiry)
}

func (s countingSCS) Delete(token string) error {
	s.c.writes.Add(1)
	return s.inner.Delete(token)
}

// countingGorilla wraps a gorilla sessions.Store. gorilla has no store
// interface below its own, so what is counted is its API: a read is a New
// (the registry's first Get of a request) on a request that carries a
// cookie, which for the FilesystemStore is one file read and for the
// CookieStore one cookie decode; a write is a Save (one file write, or one
// cookie encode).
type countingGorilla struct {
	inner sessions.Store
	c     *calls
}

func (s countingGorilla) Get(r *http.Request, name string) (*sessions.Session, error) {
	// As gorilla's own stores do: the registry caches the session per
	// request and calls New (ours, so that it is counted) the first time.
	return sessions.GetRegistry(r).Get(s, name)
}

func (s countingGorilla) New(r *http.Request, name string) (*sessions.Session, error) {
	if len(r.Header["Cookie"]) > 0 {
		s.c.reads.Add(1)
	}
	return s.inner.New(r, name)
}

func (s countingGorilla) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	s.c.writes.Add(1)
	return s.inner.Save(r, w, sess)
}

// trips counts network round trips on SQL connections: every time the
// client reads after having written, it has waited for the server once.
// Several messages written before the client waits (lib/pq's Bind, Execute
// and Sync; MySQL's statement close, which has no reply, followed by the
// next command) are one round trip; a prepare followed by an execute is
// two. The bytes go to the real server; nothing is simulated.
type trips struct{ n atomic.Int64 }

func (t *trips) load() int64 { return t.n.Load() }

// DialContext dials a real connection whose round trips count into t.
func (t *trips) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &tripConn{Conn: c, t: t}, nil
}

// Dial and DialTimeout make trips a lib/pq Dialer.
func (t *trips) Dial(network, addr string) (net.Conn, error) {
	return t.DialContext(context.Background(), network, addr)
}

func (t *trips) DialTimeout(network, addr string, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return t.DialContext(ctx, network, addr)
}

type tripConn struct {
	net.Conn
	t      *trips
	wrote  atomic.Bool // written since the last read
	pubsub atomic.Bool // a subscription (the Redis client cache's): no request's
}

func (c *tripConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("SUBSCRIBE")) || bytes.Contains(b, []byte("subscribe")) {
		c.pubsub.Store(true)
	}
	c.wrote.Store(true)
	return c.Conn.Write(b)
}

func (c *tripConn) Read(b []byte) (int, error) {
	if c.wrote.Swap(false) && !c.pubsub.Load() {
		c.t.n.Add(1)
	}
	return c.Conn.Read(b)
}

// SyscallConn keeps go-sql-driver/mysql's connection liveness check (a
// non-blocking read on the socket before a pooled connection is reused, not
// an exchange with the server) working through the wrapper.
func (c *tripConn) SyscallConn() (syscall.RawConn, error) {
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("%T has no SyscallConn", c.Conn)
	}
	return sc.SyscallConn()
}
