package session

import (
	"context"
	"sync"
	"time"
)

// callCtx is the context of the manager's store calls: a parent (the
// request's context for a load; the request's values without its
// cancellation for a save) bounded by the store timeout.
//
// It does what context.WithTimeout does, but it lives inside the Session
// and makes its timer and Done channel only when a store asks for Done:
// stores that only check Err (the memory store, a cache hit) cost no
// allocation and no timer, and the hot path of a read-only request stays
// as lean as before store calls had deadlines. Err checks the clock
// itself, closing Done if the deadline has passed, so Err and Done always
// agree.
//
// A Session runs one store call at a time (all under s.mu), so the one
// embedded in it serves them in turn, as long as no store asked for Done:
// a store that did may keep goroutines watching it after its call
// returned (database/sql does), so that context is retired, and the
// session's later calls each get one of their own (see Session.startCall).
type callCtx struct {
	mu       sync.Mutex
	parent   context.Context
	deadline time.Time
	err      error
	done     chan struct{}
	timer    *time.Timer
	stop     func() bool // stops propagating the parent's cancellation
	watched  bool        // Done was asked for: never reuse
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// startCall returns the context of a store call under parent that may last
// d; endCall ends it.
func (s *Session) startCall(parent context.Context, d time.Duration) context.Context {
	c := &s.callBuf
	c.mu.Lock()
	watched := c.watched
	c.mu.Unlock()
	if watched {
		c = new(callCtx)
	}
	s.call = c
	c.mu.Lock()
	c.parent, c.deadline = parent, time.Now().Add(d)
	c.err, c.done, c.timer, c.stop = nil, nil, nil, nil
	c.mu.Unlock()
	return c
}

func (s *Session) endCall() {
	if s.call != nil {
		s.call.end()
		s.call = nil
	}
}

// end releases what the call's Done made. A driver still holding the
// context after its call returned sees it cancelled.
func (c *callCtx) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		c.timer.Stop()
	}
	if c.stop != nil {
		c.stop()
	}
	c.cancelLocked(context.Canceled)
}

func (c *callCtx) cancelLocked(err error) {
	if c.err != nil {
		return
	}
	c.err = err
	if c.done != nil && c.done != closedChan {
		close(c.done)
	}
}

func (c *callCtx) cancel(err error) {
	c.mu.Lock()
	c.cancelLocked(err)
	c.mu.Unlock()
}

func (c *callCtx) Deadline() (time.Time, bool) {
	c.mu.Lock()
	parent, deadline := c.parent, c.deadline
	c.mu.Unlock()
	if d, ok := parent.Deadline(); ok && d.Before(deadline) {
		return d, true
	}
	return deadline, true
}

func (c *callCtx) Value(key any) any {
	c.mu.Lock()
	parent := c.parent
	c.mu.Unlock()
	return parent.Value(key)
}

func (c *callCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if err := c.parent.Err(); err != nil {
			c.cancelLocked(err)
		} else if !time.Now().Before(c.deadline) {
			c.cancelLocked(context.DeadlineExceeded)
		}
	}
	return c.err
}

func (c *callCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.watched = true
	if c.done != nil {
		return c.done
	}
	if c.err != nil {
		c.done = closedChan
		return c.done
	}
	c.done = make(chan struct{})
	c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.cancel(context.DeadlineExceeded) })
	if c.parent.Done() != nil {
		c.stop = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
	return c.done
}

// String is for debugging output, as context's own types have.
func (c *callCtx) String() string { return "session store call (with deadline)" }
