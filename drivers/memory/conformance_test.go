package memory_test

import (
	"testing"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/memory"
)

// harness declares the memory store to the conformance suite: times kept
// exactly, the default maximum payload, no cache; being in-process, two
// instances share nothing.
var harness = conformance.Harness{
	NewStore: func(tb testing.TB, namespace string) session.Store {
		return mustNew(tb)
	},
	Unsupported: map[conformance.Capability]string{
		conformance.SharedStorage: "in-process: sessions live in one Store value, which another process cannot see",
	},
}

func TestConformance(t *testing.T) { conformance.Run(t, harness) }

func BenchmarkConformance(b *testing.B) { conformance.RunBenchmarks(b, harness) }

func mustNew(tb testing.TB) *memory.Store {
	tb.Helper()
	s, err := memory.New()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
