// Package conformance is the test suite every session store runs: the
// drivers of this project and any third party's. A store's module adopts
// it with one call in a _test.go file. NewStore opens the storage that
// namespace names, the same storage every time it is given the same
// namespace (the suite opens one namespace twice to play two processes,
// and two namespaces side by side to check that they stay apart); here a
// directory per namespace under one root for the whole run:
//
//	func TestConformance(t *testing.T) {
//		root := t.TempDir()
//		conformance.Run(t, conformance.Harness{
//			NewStore: func(tb testing.TB, namespace string) session.Store {
//				s, err := mystore.Open(filepath.Join(root, namespace))
//				if err != nil {
//					tb.Fatal(err)
//				}
//				tb.Cleanup(func() { s.Close() })
//				return s
//			},
//		})
//	}
//
// Outside this repository, the store's go.mod requires both modules at a
// released version (they share a major version), with no replace
// directive:
//
//	require (
//		github.com/websession/websession/conformance v0.1.0
//		github.com/websession/websession/core v0.1.0
//	)
//
// Run checks two layers, as subtests with stable names (see Subtests and
// the README): "Store/..." turns every sentence of the Store contract of
// package session (core) into calls and checks, and "Session/..." runs
// core's Manager over the store through real HTTP requests, checking the
// session semantics a store can break: counting, expiry at its exact
// boundary, kills and regenerations that stay dead, overlapping requests
// that lose nothing, hostile cookies that never reach the store, and no
// raw session id anywhere in it. Stores that implement the optional
// session.OwnerIndex also get the "Store/Owner/..." subtests.
//
// The Harness says what the store promises where stores may legitimately
// differ: timestamp precision, the largest payload, how stale a second
// instance may be, capabilities it lacks. Time is a FakeClock that starts
// decades from today in a non-UTC zone with sub-microsecond digits, so a
// store that reads its own clock or mishandles zones fails at once; one
// subtest also runs in a subprocess whose local zone (TZ) has a
// daylight-saving fall-back at the suite's instants, so that a store
// keeping local wall-clock times fails whatever the machine's zone. The
// suite never sleeps for expiry. Races run their calls directly on the
// racing goroutines, round after round, until the measured start offsets
// of the calls have covered every part of their overlap. Every store call
// runs under a deadline, a watchdog and a panic guard, so a hung or
// panicking driver fails one subtest, not the run.
//
// RunBenchmarks measures the same store the same way (Load, Update, Touch,
// Create, and a counter request through the middleware).
//
// The suite tests itself: its own tests run it against a correct
// reference store and three stores written the way third parties write
// them (over a simulated SQL table, a simulated key-value server, a
// sync.Map), which must pass, and against those stores broken on purpose,
// one defect each, which the subtest meant for that defect must catch.
package conformance
