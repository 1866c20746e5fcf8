//go:build unix

package disk_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
)

// The store's own benchmarks, one session at a time. The data sizes are a
// small session (a counter with its envelope is about 100 bytes) and a
// large one. WEBSESSION_DISK_BENCH_DIR runs them on another file system
// than the temp dir's (durability costs depend on the device).

var benchSizes = []int{200, 64 << 10}

type benchMode struct {
	name string
	opts []disk.Option
}

var (
	cacheModes = []benchMode{
		{"Cache", nil},
		{"NoCache", []disk.Option{disk.WithCacheSize(0)}},
	}
	durabilityModes = []benchMode{
		{"NoSync", nil},
		{"Durable", []disk.Option{disk.WithDurable(true)}},
	}
)

// benchDir returns a fresh directory for a benchmark's store, under
// WEBSESSION_DISK_BENCH_DIR if set.
func benchDir(b *testing.B) string {
	b.Helper()
	parent := os.Getenv("WEBSESSION_DISK_BENCH_DIR")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func benchStore(b *testing.B, opts ...disk.Option) *disk.Store {
	b.Helper()
	s, err := disk.New(benchDir(b), opts...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

func benchRecord(size int) session.Record {
	return session.Record{Data: bytes.Repeat([]byte{'x'}, size), ATime: conformance.Epoch, Created: conformance.Epoch}
}

func BenchmarkLoad(b *testing.B) {
	ctx := context.Background()
	for _, m := range cacheModes {
		for _, size := range benchSizes {
			b.Run(fmt.Sprintf("%s/%dB", m.name, size), func(b *testing.B) {
				s := benchStore(b, m.opts...)
				if err := s.Create(ctx, "bench", benchRecord(size)); err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(size))
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := s.Load(ctx, "bench"); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkUpdate(b *testing.B) {
	ctx := context.Background()
	for _, c := range cacheModes {
		for _, d := range durabilityModes {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/%s/%dB", c.name, d.name, size), func(b *testing.B) {
					s := benchStore(b, append(c.opts[:len(c.opts):len(c.opts)], d.opts...)...)
					r := benchRecord(size)
					if err := s.Create(ctx, "bench", r); err != nil {
						b.Fatal(err)
					}
					b.SetBytes(int64(size))
					b.ReportAllocs()
					b.ResetTimer()
					for i := range b.N {
						r.Version = uint64(i + 1)
						r.ATime = conformance.Epoch.Add(time.Duration(i))
						if err := s.Update(ctx, "bench", r); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}

func BenchmarkTouch(b *testing.B) {
	ctx := context.Background()
	for _, c := range cacheModes {
		for _, d := range durabilityModes {
			for _, size := range benchSizes {
				b.Run(fmt.Sprintf("%s/%s/%dB", c.name, d.name, size), func(b *testing.B) {
					s := benchStore(b, append(c.opts[:len(c.opts):len(c.opts)], d.opts...)...)
					if err := s.Create(ctx, "bench", benchRecord(size)); err != nil {
						b.Fatal(err)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for i := range b.N {
						if err := s.Touch(ctx, "bench", conformance.Epoch.Add(time.Duration(i))); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
