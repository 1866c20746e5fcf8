package syncmapstore_test

import (
	"testing"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/examples/syncmapstore"
)

// harness tells the suite how to make the store and what it promises.
// Zero fields mean full support: times kept exactly (Precision 0), the
// default 1 MiB payload (MaxPayload 0), no cache (Staleness 0).
var harness = conformance.Harness{
	// A new, empty store for each subtest. A store over real storage would
	// open the namespace (a directory, a table, a key prefix) instead.
	NewStore: func(tb testing.TB, namespace string) session.Store {
		return syncmapstore.New()
	},
	Unsupported: map[conformance.Capability]string{
		conformance.SharedStorage: "in-process: two instances share nothing",
	},
}

func TestConformance(t *testing.T) { conformance.Run(t, harness) }

func BenchmarkConformance(b *testing.B) { conformance.RunBenchmarks(b, harness) }
