package conformance

import (
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// Harness describes the store under test. Only NewStore is required; every
// other field's zero value means "full support" or a default.
type Harness struct {
	// NewStore returns a store over the storage named by namespace. The
	// suite calls it with a fresh namespace for each subtest; calls with a
	// namespace already used must return another, independent instance over
	// the same storage (another connection pool, another watcher, another
	// cache), the way a second server process would see it. namespace
	// matches [a-z0-9_]{1,40}: usable as a directory name, a table-name
	// suffix or a key prefix. Fail with tb.Fatal on setup errors and
	// register teardown with tb.Cleanup. RunBenchmarks passes a
	// *testing.B.
	NewStore func(tb testing.TB, namespace string) session.Store

	// Precision is the largest error the storage introduces into a
	// timestamp: 0 for stores that keep time.Time exactly (memory, disk),
	// time.Microsecond for PostgreSQL timestamptz and MySQL DATETIME(6).
	// A stored time may come back up to Precision earlier, never later
	// (truncation, never rounding up). It must divide a second or be a
	// whole number of seconds.
	Precision time.Duration

	// MaxPayload is the largest Data the store promises to hold, in bytes.
	// 0 means session.DefaultMaxDataSize. The suite stores exactly this
	// much, and one byte more, which the store must either hold byte-exact
	// or refuse with an error wrapping session.ErrTooLarge.
	MaxPayload int

	// Staleness bounds how long a second instance over the same namespace
	// may keep returning what it saw before another instance's write or
	// delete (for stores with a cache). 0 means writes are visible at once.
	// The suite polls for up to Staleness, and only there waits for real.
	// Create and Update are never stale: their ErrExists and ErrConflict
	// must reflect every instance's writes at once.
	Staleness time.Duration

	// Unsupported lists capabilities the store does not have, each with the
	// reason, shown in the test log. The subtests that need a capability
	// are skipped with that reason.
	Unsupported map[Capability]string

	// Skip names subtests (by their path below the entry point, such as
	// "Store/Update/StaleVersion", or a whole group such as
	// "Store/SecondInstance", or a sub-benchmark of RunBenchmarks such as
	// "CounterRequest") to skip, each with the reason, shown in the test
	// log. A name that matches nothing fails the run, so that a typo or a
	// renamed subtest cannot silently keep a check skipped.
	Skip map[string]string

	// OpTimeout bounds each store call and each subtest, so that a hung
	// driver fails one subtest instead of hanging the run. 0 means
	// DefaultOpTimeout (10s). Every store call gets a context with this
	// deadline; a call still running OpTimeout after that (twice OpTimeout
	// in all) fails its subtest with a message naming the call.
	OpTimeout time.Duration
}

// Capability names an optional ability of a store. Only abilities that a
// correct store may legitimately lack are capabilities; everything else in
// the Store contract is required.
type Capability string

const (
	// SharedStorage: two instances over one namespace see each other's
	// writes (see Harness.NewStore). A purely in-process store whose
	// instances cannot share anything lacks it. Without it the subtests
	// "Store/SecondInstance/..." are skipped.
	SharedStorage Capability = "SharedStorage"
)
