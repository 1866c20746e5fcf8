package examplestore_test

import (
	"testing"

	"github.com/websession/websession/conformance"
	"github.com/websession/websession/conformance/internal/examplestore"
	session "github.com/websession/websession/core"
)

// server is the storage that every store of the run shares, as a Redis
// server or a database would be.
var server = examplestore.NewServer()

// harness tells the suite how to open the store and what it promises.
// Zero fields mean full support: times kept exactly (Precision 0), the
// default 1 MiB payload (MaxPayload 0), no cache (Staleness 0).
var harness = conformance.Harness{
	// NewStore opens the storage that namespace names: here a key prefix
	// on the shared server; a directory under one root, or a table, for
	// other stores. The suite gives each subtest a fresh namespace, and
	// opens one twice to play two processes over the same storage.
	NewStore: func(tb testing.TB, namespace string) session.Store {
		s := examplestore.New(server, namespace)
		tb.Cleanup(func() { s.Close() })
		return s
	},
}

func TestConformance(t *testing.T) { conformance.Run(t, harness) }

func BenchmarkConformance(b *testing.B) { conformance.RunBenchmarks(b, harness) }
