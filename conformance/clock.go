package conformance

import (
	"sync"
	"time"
)

// FakeClock is a clock that moves only when told to. Drivers and
// applications can use it in their own tests: pass it with
// session.WithClock(clk.Now) and move time with Advance or Set, without sleeping.
//
// A new FakeClock starts at Epoch: decades away from today, in a zone that
// is not UTC and has an odd offset, with sub-microsecond digits. A store
// that reads its own clock (time.Now, SQL now(), file mtimes) is off by
// years at once; one that drops zones is off by hours; one that rounds
// instead of truncating moves times into the future.
type FakeClock struct {
	mu  sync.Mutex
	now time.Time
}

// Epoch is where a new FakeClock starts: 2041-03-07 13:45:12.123456789 at
// UTC+05:45.
var Epoch = time.Date(2041, time.March, 7, 13, 45, 12, 123456789, time.FixedZone("UTC+05:45", 5*3600+45*60))

// NewFakeClock returns a FakeClock at Epoch.
func NewFakeClock() *FakeClock { return &FakeClock{now: Epoch} }

// Now returns the clock's current time.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock by d, which may be negative.
func (c *FakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Set moves the clock to t, forwards or backwards.
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}
