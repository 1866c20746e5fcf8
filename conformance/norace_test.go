//go:build !race

package conformance

// raceEnabled reports whether the test binary runs under the race detector.
const raceEnabled = false
