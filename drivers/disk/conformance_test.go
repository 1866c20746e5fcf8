//go:build unix

package disk_test

import (
	"path/filepath"
	"testing"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
)

// harness runs the suite over directories under one temp dir: the
// namespace names the store's root, so a second NewStore with the same
// namespace opens a second Store (its own cache and lock files)
// over the same files, as a second process would.
func harness(tb testing.TB, cache, durable bool) conformance.Harness {
	base := tb.TempDir()
	if b, ok := tb.(*testing.B); ok {
		base = benchDir(b)
	}
	opts := []disk.Option{disk.WithDurable(durable)}
	if !cache {
		opts = append(opts, disk.WithCacheSize(0))
	}
	return conformance.Harness{
		NewStore: func(tb testing.TB, namespace string) session.Store {
			s, err := disk.New(filepath.Join(base, namespace), opts...)
			if err != nil {
				tb.Fatal(err)
			}
			tb.Cleanup(func() {
				if err := s.Close(); err != nil {
					tb.Errorf("Close: %v", err)
				}
			})
			return s
		},
		Precision:  0, // times are stored as exact seconds and nanoseconds
		MaxPayload: new(disk.Store).MaxDataSize(),
		Staleness:  0, // the cache sees every store's writes at once (a shared counter table)
	}
}

func TestConformance(t *testing.T) {
	t.Run("Cache", func(t *testing.T) { conformance.Run(t, harness(t, true, false)) })
	t.Run("NoCache", func(t *testing.T) { conformance.Run(t, harness(t, false, false)) })
	t.Run("Durable", func(t *testing.T) { conformance.Run(t, harness(t, true, true)) })
}

func BenchmarkConformance(b *testing.B) {
	b.Run("Cache", func(b *testing.B) { conformance.RunBenchmarks(b, harness(b, true, false)) })
	b.Run("NoCache", func(b *testing.B) { conformance.RunBenchmarks(b, harness(b, false, false)) })
}
