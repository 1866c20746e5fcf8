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
// A Session runs one store call at a time (all under s.mu), so one
// callCtx serves them all in turn: start before each call, end after.
type callCtx struct {
	parent   context.Context
	deadline time.Time

	mu    sync.Mutex
	err   error
	done  chan struct{}
	timer *time.Timer
	stop  func() bool // stops propagating the parent's cancellation
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// start readies c for a call under parent that may last d.
func (c *callCtx) start(parent context.Context, d time.Duration) context.Context {
	c.parent, c.deadline = parent, time.Now().Add(d)
	c.err, c.done, c.timer, c.stop = nil, nil, nil, nil
	return c
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
	if d, ok := c.parent.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

func (c *callCtx) Value(key any) any { return c.parent.Value(key) }

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
