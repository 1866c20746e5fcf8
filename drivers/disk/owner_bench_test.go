//go:build unix

package disk

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
)

// BenchmarkOwners measures what "where am I signed in" costs: listing one
// owner's sessions (LoadOwned) and ending all of them (LoadOwned, then
// Delete of each), among 10,000 and among 1,000,000 sessions, 10 per owner
// (1,000 and 100,000 owners). The time must not grow with the total. The
// store runs without its read cache, so every session is read from its
// file. The sessions are written straight to their files once per test
// binary run (a few minutes for a million here, and about 4 GB of disk:
// one block per file) under WEBSESSION_DISK_BENCH_DIR or the temp dir,
// synced to disk before timing, and removed when the run ends.
func BenchmarkOwners(b *testing.B) {
	const perOwner = 10
	for _, total := range []int{10_000, 1_000_000} {
		owners := total / perOwner
		b.Run(fmt.Sprintf("sessions=%d", total), func(b *testing.B) {
			dir := ownerBenchDir(b, total, perOwner)
			s, err := New(dir, WithCacheSize(0))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			b.Run("LoadOwned", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					got, err := s.LoadOwned(ctx, benchOwner(i%owners))
					if err != nil || len(got) != perOwner {
						b.Fatalf("LoadOwned = %d records, %v; want %d", len(got), err, perOwner)
					}
					i += 7919 // a prime: owners spread over the shards
				}
			})
			b.Run("EndAll", func(b *testing.B) {
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					owner := benchOwner(i % owners)
					i += 7919
					got, err := s.LoadOwned(ctx, owner)
					if err != nil || len(got) != perOwner {
						b.Fatalf("LoadOwned = %d records, %v; want %d", len(got), err, perOwner)
					}
					for _, o := range got {
						if err := s.Delete(ctx, o.Key); err != nil {
							b.Fatal(err)
						}
					}
					// Put them back, untimed, for the next round.
					b.StopTimer()
					for _, o := range got {
						if err := s.Create(ctx, o.Key, o.Record); err != nil {
							b.Fatal(err)
						}
					}
					b.StartTimer()
				}
			})
		})
	}
}

func benchOwner(i int) string      { return fmt.Sprintf("owner%07d", i) }
func benchSession(o, j int) string { return fmt.Sprintf("sess%07d_%d", o, j) }

var (
	ownerDirsMu sync.Mutex
	ownerDirs   = map[int]string{}
)

// ownerBenchDir returns a store directory holding total sessions, perOwner
// per owner, with their owner indexes, made once per run.
func ownerBenchDir(b *testing.B, total, perOwner int) string {
	ownerDirsMu.Lock()
	defer ownerDirsMu.Unlock()
	if dir, ok := ownerDirs[total]; ok {
		return dir
	}
	parent := os.Getenv("WEBSESSION_DISK_BENCH_DIR")
	if parent == "" {
		parent = os.TempDir()
	}
	dir, err := os.MkdirTemp(parent, fmt.Sprintf("websession-owners-%d-", total))
	if err != nil {
		b.Fatal(err)
	}
	atExit = append(atExit, func() { os.RemoveAll(dir) })
	s, err := New(dir, WithCacheSize(0))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	owners := total / perOwner
	// Two writers (the machine's cores); files written directly in the
	// store's format, as Create would leave them.
	errs := make(chan error, 2)
	for w := range 2 {
		go func() {
			errs <- func() error {
				for o := w; o < owners; o += 2 {
					owner := benchOwner(o)
					keys := make([]string, perOwner)
					for j := range keys {
						keys[j] = benchSession(o, j)
						buf, err := encode(owned(`{"user":"`+owner+`","n":1}`, owner, t0))
						if err != nil {
							return err
						}
						if err := os.WriteFile(s.pathIn(shardOf(keys[j]), keys[j]), buf, 0o600); err != nil {
							return err
						}
					}
					sh, path := s.indexPath(owner)
					if err := os.MkdirAll(sh.dir, 0o700); err != nil {
						return err
					}
					if err := os.WriteFile(path, encodeIndex(keys), 0o600); err != nil {
						return err
					}
				}
				return nil
			}()
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	// Write it all back before timing anything: otherwise the first
	// rounds measure the writeback of the setup's files.
	syscall.Sync()
	ownerDirs[total] = dir
	return filepath.Clean(dir)
}
