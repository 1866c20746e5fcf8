package conformance_test

import (
	"fmt"
	"time"

	"github.com/websession/websession/conformance"
)

// A FakeClock moves only when told to: pass it to session.WithClock and
// test expiry without sleeping.
func ExampleFakeClock() {
	clock := conformance.NewFakeClock()
	fmt.Println(clock.Now())
	clock.Advance(24*time.Hour + time.Nanosecond)
	fmt.Println(clock.Now().UTC())
	// Output:
	// 2041-03-07 13:45:12.123456789 +0545 UTC+05:45
	// 2041-03-08 08:00:12.12345679 +0000 UTC
}

// Subtests lists what Run checks; here, what a store lacking
// SharedStorage (an in-process one) skips.
func ExampleSubtests() {
	for _, s := range conformance.Subtests() {
		if s.Needs == conformance.SharedStorage {
			fmt.Println(s.Name)
		}
	}
	// Output:
	// Store/SecondInstance/SeesCreate
	// Store/SecondInstance/SeesUpdate
	// Store/SecondInstance/SeesTouch
	// Store/SecondInstance/SeesDelete
	// Store/SecondInstance/SeesCleanup
	// Store/SecondInstance/WriteConflicts
	// Store/Owner/SecondInstance
	// Session/Overlap/ManyWritersTwoInstances
	// Session/Overlap/AtomicIncrementsTwoInstances
}
