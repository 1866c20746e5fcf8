//go:build unix

package bench

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/websession/websession/conformance"
	session "github.com/websession/websession/core"
	"github.com/websession/websession/drivers/disk"
)

// BenchmarkDiskWrites puts our disk store's Create and Update beside the
// floor: a bare loop doing what one atomic write must do at the least, in
// the same layout (256 subdirectories, a file per session named by its
// key): create a temporary file, write the session, rename it into place
// (over the old file for an update); with durability, also fsync the file
// and the directory. Raw system calls, no checksum, no lock, no read of
// the current version: nothing a store could leave out. Backends:
// floor (the loop), ours-disk-nocache (disk.New with WithCacheSize(0)) and
// ours-disk (with its read cache), each plain and Durable.
func BenchmarkDiskWrites(b *testing.B) {
	type impl struct {
		name string
		run  func(b *testing.B, op string, durable bool)
	}
	impls := []impl{
		{"floor", runFloor},
		{"ours-disk-nocache", func(b *testing.B, op string, durable bool) {
			runOurs(b, op, disk.WithCacheSize(0), disk.WithDurable(durable))
		}},
		{"ours-disk", func(b *testing.B, op string, durable bool) { runOurs(b, op, disk.WithDurable(durable)) }},
	}
	// Every Create runs before any Update: replacing a file frees an
	// inode, and on an ext4 without a journal each file creation in the
	// next minutes scans past the recently freed inodes, which would
	// charge the floor's Updates to whichever Create comes next. (This
	// file's name makes it run after BenchmarkSessions for the same
	// reason.)
	for _, op := range []string{"Create", "Update"} {
		for _, durable := range []bool{false, true} {
			name := op
			if durable {
				name += "Durable"
			}
			for _, im := range impls {
				b.Run("backend="+im.name+"/scenario="+name, func(b *testing.B) { im.run(b, op, durable) })
			}
		}
	}
}

// floorData is the size of a small session as our store writes it: about
// 130 bytes of data plus its 56-byte header and trailer.
var floorData = bytes.Repeat([]byte{'x'}, 186)

func floorKey(i int) string { return fmt.Sprintf("K%042d", i) } // the length of our store keys

func runFloor(b *testing.B, op string, durable bool) {
	root := scratchDir(b)
	var dirs [256]string
	for i := range dirs {
		dirs[i] = filepath.Join(root, fmt.Sprintf("%02x", i))
		if err := syscall.Mkdir(dirs[i], 0o700); err != nil {
			b.Fatal(err)
		}
	}
	write := func(dir, name, tmp string) {
		fd, err := syscall.Open(dir+"/"+tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := syscall.Write(fd, floorData); err != nil {
			b.Fatal(err)
		}
		if durable {
			if err := syscall.Fsync(fd); err != nil {
				b.Fatal(err)
			}
		}
		syscall.Close(fd)
		if err := syscall.Rename(dir+"/"+tmp, dir+"/"+name); err != nil {
			b.Fatal(err)
		}
		if durable {
			d, err := syscall.Open(dir, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
			if err != nil {
				b.Fatal(err)
			}
			if err := syscall.Fsync(d); err != nil {
				b.Fatal(err)
			}
			syscall.Close(d)
		}
	}
	if op == "Update" {
		write(dirs[0], floorKey(0), ".tmp-setup")
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		tmp := ".tmp-" + strconv.Itoa(i)
		if op == "Create" {
			write(dirs[i%256], floorKey(i), tmp)
		} else {
			write(dirs[0], floorKey(0), tmp)
		}
	}
}

func runOurs(b *testing.B, op string, opts ...disk.Option) {
	s, err := disk.New(scratchDir(b), append([]disk.Option{disk.WithLogger(discard)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	rec := session.Record{Data: floorData[:130], ATime: conformance.Epoch, Created: conformance.Epoch}
	if op == "Update" {
		if err := s.Create(ctx, floorKey(0), rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		if op == "Create" {
			if err := s.Create(ctx, floorKey(i), rec); err != nil {
				b.Fatal(err)
			}
			continue
		}
		rec.Version = uint64(i)
		rec.ATime = conformance.Epoch.Add(time.Duration(i))
		if err := s.Update(ctx, floorKey(0), rec); err != nil {
			b.Fatal(err)
		}
	}
	key, version := floorKey(i), uint64(1)
	if op == "Update" {
		key, version = floorKey(0), uint64(i+1)
	}
	if got, err := s.Load(ctx, key); err != nil || !bytes.Equal(got.Data, rec.Data) || got.Version != version {
		b.Fatalf("the last write reads back %q version %d, %v; want version %d", got.Data, got.Version, err, version)
	}
}
