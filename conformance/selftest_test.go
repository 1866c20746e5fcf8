package conformance

import (
	"bytes"
	"cmp"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"testing"
	"time"
)

// TestReference runs the suite against the correct reference store: every
// subtest must pass.
func TestReference(t *testing.T) {
	Run(t, refHarness("", 0, 0))
}

// TestReferenceMicrosecond runs it against the reference store keeping
// microseconds, as PostgreSQL and DATETIME(6) do, declared as such.
func TestReferenceMicrosecond(t *testing.T) {
	Run(t, refHarness("", time.Microsecond, 0))
}

// TestReferenceCaching runs it against the reference store with a read
// cache, declared with its staleness.
func TestReferenceCaching(t *testing.T) {
	Run(t, refHarness("", 0, 20*time.Millisecond))
}

// TestRealistic runs the suite against the correct versions of the
// realistic stores whose defects the self-tests plant: a simulated SQL
// table, a simulated key-value server (both implement OwnerIndex, and
// share their storage between namespaces) and a sync.Map (which does
// not implement OwnerIndex: such a store must pass too).
func TestRealistic(t *testing.T) {
	t.Run("SQL", func(t *testing.T) { Run(t, sqlHarness("")) })
	t.Run("KV", func(t *testing.T) { Run(t, kvHarness("")) })
	t.Run("SyncMap", func(t *testing.T) { Run(t, syncHarness("")) })
}

// BenchmarkReference measures the reference store. Run by TestBenchmarks
// with brokenEnv set, it measures that case's broken store instead.
func BenchmarkReference(b *testing.B) {
	h := refHarness("", 0, 0)
	if name := os.Getenv(brokenEnv); name != "" {
		i := slices.IndexFunc(brokenCases, func(c brokenCase) bool { return c.name == name })
		if i < 0 {
			b.Fatalf("no self-test case %q", name)
		}
		h = brokenCases[i].harness()
	}
	RunBenchmarks(b, h)
}

// TestBenchmarks runs RunBenchmarks briefly in a subprocess against the
// reference store (every sub-benchmark reports ns/op and allocs/op) and
// against stores that skip work, which its checks after the loop catch.
func TestBenchmarks(t *testing.T) {
	if os.Getenv(brokenEnv) != "" {
		t.Skip("inside a subprocess")
	}
	cases := []struct {
		store  string
		failed []string
	}{
		{"", nil},
		{bugUpdateNoop, []string{"Update", "CounterRequest", "OverlappingWriters"}},
		{bugTouchNoop, []string{"Touch"}},
		{bugNoVersionBump, []string{"Update", "CounterRequest", "OverlappingWriters"}},
	}
	for _, c := range cases {
		t.Run(cmp.Or(c.store, "reference"), func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkReference$", "-test.benchtime=40x", "-test.timeout=2m")
			cmd.Env = append(quickExit(os.Environ(), brokenEnv), brokenEnv+"="+c.store)
			out, err := cmd.CombinedOutput()
			if (err != nil) != (len(c.failed) > 0) {
				t.Errorf("subprocess: %v, want failure: %v", err, len(c.failed) > 0)
			}
			for _, bm := range benchmarks {
				failed := slices.Contains(c.failed, bm.name)
				if got := bytes.Contains(out, []byte("--- FAIL: BenchmarkReference/"+bm.name)); got != failed {
					t.Errorf("sub-benchmark %s failed: %v, want %v", bm.name, got, failed)
				}
				line := regexp.MustCompile(`(?m)^BenchmarkReference/` + bm.name + `(-\d+)?\s+40\s+\d+(\.\d+)? ns/op(\s+\S+ \S+/\S+)*?\s+\d+ B/op\s+\d+ allocs/op`)
				if !failed && !line.Match(out) {
					t.Errorf("no ns/op and allocs/op figures for %s", bm.name)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}
