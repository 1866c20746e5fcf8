// Package conformance is the test suite every session store runs: the
// drivers of this project and any third party's. A store's module adopts
// it with one call in a _test.go file:
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{
//			NewStore: func(tb testing.TB, namespace string) session.Store {
//				return mystore.Open(tb.TempDir())
//			},
//		})
//	}
//
// Run checks two layers, as subtests with stable names (see Subtests and
// the README): "Store/..." turns every sentence of the Store contract of
// package session (core) into calls and checks, and "Session/..." runs
// core's Manager over the store through real HTTP requests, checking the
// session semantics a store can break: counting, expiry at its exact
// boundary, kills and regenerations that stay dead, overlapping requests
// that lose nothing, hostile cookies that never reach the store, and no
// raw session id anywhere in it.
//
// The Harness says what the store promises where stores may legitimately
// differ: timestamp precision, the largest payload, how stale a second
// instance may be, capabilities it lacks. Time is a FakeClock that starts
// decades from today in a non-UTC zone with sub-microsecond digits, so a
// store that reads its own clock or mishandles zones fails at once; the
// suite never sleeps for expiry. Every store call runs under a deadline
// and a watchdog, so a hung driver fails one subtest, not the run.
//
// RunBenchmarks measures the same store the same way (Load, Update, Touch,
// Create, and a counter request through the middleware).
//
// The suite tests itself: its own tests run it against a correct
// reference store, which must pass, and against stores broken on purpose,
// one defect each, which the subtest meant for that defect must catch.
package conformance
