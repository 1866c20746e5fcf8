//go:build unix

package disk

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	session "github.com/websession/websession/core"
	"golang.org/x/sys/unix"
)

func TestInvalidKeysNeverReachAPath(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "store")
	s := newStore(t, root, WithCacheSize(0))
	// Something a traversal could hit.
	if err := os.WriteFile(filepath.Join(parent, "victim"), []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := tree(t, parent)
	ctx := context.Background()
	bad := []string{
		"", ".", "..", "../victim", "../../etc/passwd", "a/../../b", "/etc/passwd", `..\..\windows\win.ini`,
		"%2e%2e%2f", "a\x00b", "a b", "a.b", "é", strings.Repeat("a", session.MaxKeyLen+1), "00/x",
	}
	for _, key := range bad {
		errs := map[string]error{}
		_, errs["Load"] = s.Load(ctx, key)
		errs["Create"] = s.Create(ctx, key, rec("x", t0))
		errs["Update"] = s.Update(ctx, key, session.Record{Data: []byte("x"), ATime: t0, Version: 1})
		errs["Touch"] = s.Touch(ctx, key, t0)
		errs["Delete"] = s.Delete(ctx, key)
		for op, err := range errs {
			if !errors.Is(err, session.ErrInvalidKey) {
				t.Errorf("%s(%q) = %v, want an error wrapping session.ErrInvalidKey", op, key, err)
			}
		}
	}
	if after := tree(t, parent); !slicesEqual(before, after) {
		t.Errorf("invalid keys changed the file tree:\nbefore %v\nafter  %v", before, after)
	}
	// The longest valid key works, and its file name fits.
	long := strings.Repeat("Z", session.MaxKeyLen)
	if err := s.Create(ctx, long, rec("long", t0)); err != nil {
		t.Fatalf("Create with a %d-byte key: %v", len(long), err)
	}
	if got, err := s.Load(ctx, long); err != nil || string(got.Data) != "long" {
		t.Fatalf("Load of the longest key = %q, %v", got.Data, err)
	}
}

func slicesEqual(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

func TestLayoutAndPermissions(t *testing.T) {
	old := syscall.Umask(0o022) // the usual umask; the store must not rely on it
	defer syscall.Umask(old)
	root := filepath.Join(t.TempDir(), "a", "b")
	s := newStore(t, root)
	ctx := context.Background()
	if err := s.Create(ctx, "Key_1", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	i, path := s.path("Key_1")
	if want := filepath.Join(root, fmt.Sprintf("%02x", i), fileNames.EncodeToString([]byte("Key_1"))); path != want {
		t.Errorf("path = %s, want %s", path, want)
	}
	for _, p := range []string{root, filepath.Dir(path)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", p, fi.Mode().Perm())
		}
	}
	for _, p := range []string{path, filepath.Join(filepath.Dir(path), lockName), filepath.Join(root, cacheFileName)} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != numShards+2 || entries[numShards+1].Name() != "ff" || entries[0].Name() != cacheFileName || entries[1].Name() != storePrefix+s.token {
		t.Errorf("root holds %d entries, want the cache's %s file, the store's %s file and the %d subdirectories", len(entries), cacheFileName, storePrefix+s.token, numShards)
	}
	if temps := tempFiles(t, root); len(temps) != 0 {
		t.Errorf("temp files left after a write: %v", temps)
	}

	s2 := newStore(t, t.TempDir(), WithPermissions(0o640, 0o750))
	if err := s2.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	_, p2 := s2.path("k")
	if fi, _ := os.Stat(p2); fi.Mode().Perm() != 0o640 {
		t.Errorf("WithPermissions(0640, 0750): file mode %v", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Dir(p2)); fi.Mode().Perm() != 0o750 {
		t.Errorf("WithPermissions(0640, 0750): directory mode %v", fi.Mode().Perm())
	}
}

func TestKeysDifferingInCaseGetDifferentFiles(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	for _, k := range []string{"abc", "ABC", "aBc"} {
		if err := s.Create(ctx, k, rec(k, t0)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"abc", "ABC", "aBc"} {
		if got, err := s.Load(ctx, k); err != nil || string(got.Data) != k {
			t.Errorf("Load(%q) = %q, %v", k, got.Data, err)
		}
	}
	_, a := s.path("abc")
	_, b := s.path("ABC")
	if strings.EqualFold(filepath.Base(a), filepath.Base(b)) {
		t.Errorf("file names %s and %s collide on a case-insensitive file system", a, b)
	}
}

func TestShardsSpreadKeysWithACommonPrefix(t *testing.T) {
	var count [numShards]int
	for i := range 256 * 64 {
		count[shardOf(fmt.Sprintf("same-prefix-%d", i))]++
	}
	for i, n := range count {
		if n < 16 || n > 160 {
			t.Errorf("shard %02x got %d of %d keys, want about 64", i, n, 256*64)
		}
	}
}

func TestFormatRoundTrip(t *testing.T) {
	times := []time.Time{
		{}, t0, t0.Add(1), time.Unix(0, 0), time.Unix(-1, 999999999),
		time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.FixedZone("x", -12345)),
		time.Unix(1<<62, 5), time.Unix(-(1 << 62), 5),
		// Beyond what Unix seconds can say: they wrap, and still round-trip.
		time.Unix(math.MinInt64+62135596800, 0).Add(-time.Hour), time.Unix(math.MaxInt64, 999999999),
	}
	owners := []string{"", "o", "owner_Key-1", strings.Repeat("Z", session.MaxKeyLen)}
	for _, at := range times {
		for j, data := range [][]byte{nil, {}, {0}, []byte("hello\x00\xff")} {
			owner := owners[j%len(owners)]
			in := session.Record{Data: data, ATime: at, Created: at.Add(-3), Version: 1<<64 - 1, Owner: owner}
			buf, err := encode(in)
			if err != nil {
				t.Fatalf("encode(%v): %v", at, err)
			}
			out, err := decode(buf)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !out.ATime.Equal(in.ATime) || !out.Created.Equal(in.Created) || out.Version != in.Version || !bytes.Equal(out.Data, in.Data) || out.Owner != owner {
				t.Errorf("round trip of %+v gave %+v", in, out)
			}
			h, err := decodeHeader(buf[:fixedSize+len(owner)+4])
			if err != nil || !h.atime.Equal(at) || h.dataLen != len(data) || h.owner != owner {
				t.Errorf("decodeHeader = %+v, %v", h, err)
			}
		}
	}
	if _, err := encode(session.Record{Owner: "not a key"}); !errors.Is(err, session.ErrInvalidKey) {
		t.Errorf("encode with an invalid owner: %v, want ErrInvalidKey", err)
	}
	if _, err := encode(session.Record{Data: make([]byte, maxDataSize+1)}); !errors.Is(err, session.ErrTooLarge) {
		t.Errorf("encode of maxDataSize+1 bytes: %v, want ErrTooLarge", err)
	}
}

// corruptions turns a valid file into invalid ones.
func corruptions(valid []byte) map[string][]byte {
	flip := func(i int) []byte {
		b := bytes.Clone(valid)
		b[i] ^= 0x40
		return b
	}
	return map[string][]byte{
		"empty":           {},
		"foreign text":    []byte("this is somebody's notes file, not a session"),
		"truncated":       valid[:len(valid)-3],
		"header only":     valid[:fixedSize+4],
		"appended":        append(bytes.Clone(valid), 0),
		"bad magic":       flip(0),
		"bad version":     flip(5),
		"flipped atime":   flip(10),
		"flipped data":    flip(fixedSize + 4 + 1),
		"owner too long":  func() []byte { b := bytes.Clone(valid); b[44] = 200; return b }(),
		"flipped trailer": flip(len(valid) - 1),
	}
}

func TestCorruptFiles(t *testing.T) {
	valid, err := encode(session.Record{Data: []byte("some session data"), ATime: t0, Created: t0, Version: 3})
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range corruptions(valid) {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			logs := &logSink{}
			s := newStore(t, t.TempDir(), WithLogger(logs.logger()))
			ctx := context.Background()
			_, path := s.path("victim")
			if err := os.WriteFile(path, content, 0o600); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				_, err := s.Load(ctx, "victim")
				if !errors.Is(err, ErrCorrupt) || !errors.Is(err, session.ErrNotFound) {
					t.Errorf("Load = %v, want an error wrapping ErrCorrupt and session.ErrNotFound", err)
				}
			}
			if n := logs.count("corrupt"); n != 1 {
				t.Errorf("the corrupt file was logged %d times, want once", n)
			}
			if err := s.Touch(ctx, "victim", t0.Add(time.Hour)); !errors.Is(err, ErrCorrupt) || !errors.Is(err, session.ErrNotFound) {
				t.Errorf("Touch = %v, want ErrCorrupt and ErrNotFound", err)
			}
			if err := s.Create(ctx, "victim", rec("new", t0)); !errors.Is(err, session.ErrExists) {
				t.Errorf("Create over a corrupt file = %v, want ErrExists", err)
			}
			// Files whose header is intact: Update (which reads only the
			// header) would replace them, and Cleanup judges them by it.
			headerIntact := name == "flipped data" || name == "flipped trailer" || name == "truncated" ||
				name == "appended" || name == "header only"
			if !headerIntact {
				// Update reads only the header; with a bad header it
				// reports the file as corrupt.
				if err := s.Update(ctx, "victim", session.Record{Data: []byte("x"), ATime: t0, Version: 3}); !errors.Is(err, ErrCorrupt) {
					t.Errorf("Update = %v, want ErrCorrupt", err)
				}
			}
			if got, _ := os.ReadFile(path); !bytes.Equal(got, content) {
				t.Errorf("the corrupt file was changed")
			}
			r, err := s.Sweep(ctx, t0.Add(100*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			wantSkipped := 1
			if headerIntact {
				// The header is intact and says the session expired:
				// Cleanup deletes it without reading the data.
				wantSkipped = 0
			}
			if r.Skipped != wantSkipped || r.Deleted != 1-wantSkipped {
				t.Errorf("Sweep = %+v, want %d skipped", r, wantSkipped)
			}
			if wantSkipped == 1 {
				if _, err := os.Stat(path); err != nil {
					t.Errorf("Sweep removed a file that is not a session: %v", err)
				}
				if err := s.Delete(ctx, "victim"); err != nil {
					t.Errorf("Delete of a corrupt file: %v", err)
				}
				if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("after Delete the corrupt file is still there: %v", err)
				}
			}
		})
	}
}

func FuzzDecode(f *testing.F) {
	valid, _ := encode(session.Record{Data: []byte("data"), ATime: t0, Created: t0, Version: 1})
	for _, c := range corruptions(valid) {
		f.Add(c)
	}
	f.Add(valid)
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := decode(b)
		if _, herr := decodeHeader(b); herr != nil && err == nil {
			t.Fatalf("decode accepted what decodeHeader refused: %v", herr)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("decode error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		again, err := encode(rec)
		if b[5] == formatV1 {
			// Version 1 files load; writes make version 2.
			if back, derr := decode(again); err != nil || derr != nil || !bytes.Equal(back.Data, rec.Data) || !back.ATime.Equal(rec.ATime) || back.Version != rec.Version {
				t.Fatalf("a version 1 file does not round-trip through version 2: %v %v", err, derr)
			}
			return
		}
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("a file that decodes does not encode back to itself: %v", err)
		}
	})
}

func TestSweep(t *testing.T) {
	logs := &logSink{}
	root := t.TempDir()
	s := newStore(t, root, WithLogger(logs.logger()))
	ctx := context.Background()
	cutoff := t0.Add(time.Hour)
	for i := range 10 {
		at := cutoff.Add(time.Duration(i-5) * time.Nanosecond) // 5 before, one at, 4 after
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), session.Record{Data: bytes.Repeat([]byte{'x'}, 10000), ATime: at, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// Things that are not sessions, which must be skipped, not deleted.
	_, p := s.path("k0")
	shardDir := filepath.Dir(p)
	otherShard := s.shards[(shardOf("k0")+1)%numShards].dir
	misplaced, _ := encode(session.Record{ATime: t0, Created: t0, Version: 1})
	foreign := map[string][]byte{
		filepath.Join(root, "README"):                                       []byte("notes"),
		filepath.Join(shardDir, "notes.txt"):                                []byte("notes"),
		filepath.Join(shardDir, "MFRGG"):                                    misplaced, // upper case: not a name the store makes
		filepath.Join(otherShard, fileNames.EncodeToString([]byte("k0"))):   misplaced, // valid name, wrong shard
		filepath.Join(shardDir, fileNames.EncodeToString([]byte("ab"))+"b"): misplaced, // not canonical base32
	}
	for path, content := range foreign {
		if err := os.WriteFile(path, content, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dirNamedLikeSession := s.shards[shardOf("dirkey")].dir + "/" + fileNames.EncodeToString([]byte("dirkey"))
	if err := os.Mkdir(dirNamedLikeSession, 0o700); err != nil {
		t.Fatal(err)
	}
	linkNamedLikeSession := s.shards[shardOf("linkkey")].dir + "/" + fileNames.EncodeToString([]byte("linkkey"))
	if err := os.Symlink(p, linkNamedLikeSession); err != nil {
		t.Fatal(err)
	}
	// A temp file left by a crash.
	stale := filepath.Join(shardDir, tempPrefix+"crashed")
	if err := os.WriteFile(stale, []byte("half a sess"), 0o600); err != nil {
		t.Fatal(err)
	}

	readsBefore := s.fileReads.Load()
	r, err := s.Sweep(ctx, cutoff)
	if err != nil {
		t.Fatal(err)
	}
	want := SweepResult{Deleted: 5, TempRemoved: 1, Skipped: len(foreign) + 2}
	if r != want {
		t.Errorf("Sweep = %+v, want %+v", r, want)
	}
	if n := s.fileReads.Load() - readsBefore; n != 0 {
		t.Errorf("Sweep read %d whole files, want headers only", n)
	}
	for i := range 10 {
		_, err := s.Load(ctx, fmt.Sprintf("k%d", i))
		if gone := errors.Is(err, session.ErrNotFound); gone != (i < 5) {
			t.Errorf("k%d (atime cutoff%+dns): gone=%v, err %v", i, i-5, gone, err)
		}
	}
	for path := range foreign {
		if _, err := os.Stat(path); err != nil {
			t.Errorf("Sweep removed %s, which is not a session: %v", path, err)
		}
	}
	for _, path := range []string{dirNamedLikeSession, linkNamedLikeSession} {
		if _, err := os.Lstat(path); err != nil {
			t.Errorf("Sweep removed %s: %v", path, err)
		}
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp file still there: %v", err)
	}
	// Reported once each, not at every sweep.
	if _, err := s.Sweep(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	if n := logs.count("skipped"); n != want.Skipped {
		t.Errorf("%d skip reports after two sweeps, want %d (once per file)", n, want.Skipped)
	}
}

func TestSweepToleratesVanishingFilesAndDirectories(t *testing.T) {
	s := newStore(t, t.TempDir(), WithLogger((&logSink{}).logger()))
	ctx := context.Background()
	for i := range 50 {
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), rec("x", t0)); err != nil {
			t.Fatal(err)
		}
	}
	// Another process deletes every file just as Sweep comes to read it.
	other := newStore(t, s.Dir(), WithCacheSize(0))
	vanished := 0
	s.testHookSweepEntry = func(path string) {
		key, _ := keyOfName(filepath.Base(path))
		if err := other.Delete(ctx, key); err != nil {
			t.Error(err)
		}
		vanished++
	}
	r, err := s.Sweep(ctx, t0.Add(time.Hour))
	if err != nil || r.Deleted != 0 || r.Skipped != 0 {
		t.Errorf("Sweep over vanishing files = %+v, %v; want nothing done and no error", r, err)
	}
	if vanished != 50 {
		t.Errorf("hook saw %d files, want 50", vanished)
	}
	s.testHookSweepEntry = nil
	// A subdirectory removed by hand: Sweep carries on, writes recreate it.
	if err := os.RemoveAll(s.shards[7].dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sweep(ctx, t0); err != nil {
		t.Errorf("Sweep with a subdirectory missing: %v", err)
	}
}

func TestLoadIsCachedAndNeverAliased(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("original", t0)); err != nil {
		t.Fatal(err)
	}
	first, err := s.Load(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	reads := s.fileReads.Load()
	for range 5 {
		got, err := s.Load(ctx, "k")
		if err != nil || string(got.Data) != "original" || got.Version != 1 || !got.ATime.Equal(t0) {
			t.Fatalf("cached Load = %+v, %v", got, err)
		}
		got.Data[0] = 'X' // must not reach the cache
	}
	first.Data[1] = 'Y'
	if n := s.fileReads.Load() - reads; n != 0 {
		t.Errorf("5 repeated Loads read the file %d times, want 0 (cache hits)", n)
	}
	if got, _ := s.Load(ctx, "k"); string(got.Data) != "original" {
		t.Errorf("cache holds %q after callers modified returned records", got.Data)
	}
	// Own writes are visible at once.
	if err := s.Update(ctx, "k", session.Record{Data: []byte("second"), ATime: t0.Add(1), Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "second" || got.Version != 2 {
		t.Errorf("Load after own Update = %q v%d, %v", got.Data, got.Version, err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Load after own Delete = %v", err)
	}
}

// A store's own Updates and Touches keep their record cached (a new
// session is cached by its first Load, not by Create); another instance's
// write is seen by the very next Load.
func TestCacheKeepsOwnWrites(t *testing.T) {
	dir := t.TempDir()
	a, b := newStore(t, dir), newStore(t, dir)
	ctx := context.Background()
	var loadReads int64 // files read by the Loads below (Touch reads one too)
	load := func(want string) {
		t.Helper()
		before := a.fileReads.Load()
		got, err := a.Load(ctx, "k")
		if err != nil || string(got.Data) != want {
			t.Fatalf("Load = %q, %v; want %q", got.Data, err, want)
		}
		loadReads += a.fileReads.Load() - before
	}
	if err := a.Create(ctx, "k", rec("v1", t0)); err != nil {
		t.Fatal(err)
	}
	load("v1")
	if loadReads != 1 {
		t.Errorf("the first Load after Create read %d files, want 1 (Create caches nothing)", loadReads)
	}
	loadReads = 0
	for v := 1; v <= 3; v++ {
		if err := a.Update(ctx, "k", session.Record{Data: []byte(fmt.Sprintf("v%d", v+1)), ATime: t0, Version: uint64(v)}); err != nil {
			t.Fatal(err)
		}
		if err := a.Touch(ctx, "k", t0.Add(time.Duration(v))); err != nil {
			t.Fatal(err)
		}
		load(fmt.Sprintf("v%d", v+1))
	}
	if loadReads != 0 {
		t.Errorf("Loads after the store's own Updates and Touches read %d files, want 0", loadReads)
	}
	if err := b.Update(ctx, "k", session.Record{Data: []byte("from b"), ATime: t0, Version: 4}); err != nil {
		t.Fatal(err)
	}
	load("from b")
	if loadReads != 1 {
		t.Errorf("Load after another instance's Update read %d files, want 1", loadReads)
	}
}

// A reader holding a session file keeps what it read, whole, while writes
// go on: the writer that would reuse that file as its spare leaves it to
// the reader and makes a new one.
func TestWriterLeavesAHeldFileAlone(t *testing.T) {
	s := newStore(t, t.TempDir(), WithCacheSize(0))
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("first", t0)); err != nil {
		t.Fatal(err)
	}
	_, path := s.path("k")
	fd, err := openRead(path)
	if err != nil {
		t.Fatal(err)
	}
	defer closeFd(fd)
	if ok, err := tryLock(fd, path, false); !ok || err != nil {
		t.Fatalf("shared flock: %v, %v", ok, err)
	}
	held, err := s.readOpen(fd, path, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	for v := 1; v <= 4; v++ {
		if err := s.Update(ctx, "k", session.Record{Data: []byte(fmt.Sprintf("update %d", v)), ATime: t0, Version: uint64(v)}); err != nil {
			t.Fatal(err)
		}
	}
	again, err := s.readOpen(fd, path, 0, false)
	if err != nil || !bytes.Equal(again, held) {
		t.Errorf("the held file changed under its reader: %v", err)
	}
	if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "update 4" || got.Version != 5 {
		t.Errorf("Load = %q version %d, %v", got.Data, got.Version, err)
	}
}

// Another instance's writes are seen by the very next Load: the shared
// counter changed, so the cached record is not served.
func TestCacheSeesAnotherInstance(t *testing.T) {
	dir := t.TempDir()
	a, b := newStore(t, dir), newStore(t, dir)
	ctx := context.Background()
	if err := a.Create(ctx, "k", rec("v1", t0)); err != nil {
		t.Fatal(err)
	}
	load := func() (session.Record, error) { return b.Load(ctx, "k") }
	if got, err := load(); err != nil || string(got.Data) != "v1" {
		t.Fatalf("b.Load = %q, %v", got.Data, err)
	}
	reads := b.fileReads.Load()
	if _, err := load(); err != nil || b.fileReads.Load() != reads {
		t.Fatalf("b's second Load was not a cache hit")
	}
	if err := a.Update(ctx, "k", session.Record{Data: []byte("v2"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if got, _ := load(); string(got.Data) != "v2" {
		t.Errorf("b.Load after a's Update = %q, want v2", got.Data)
	}
	if err := a.Touch(ctx, "k", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := load(); !got.ATime.Equal(t0.Add(time.Hour)) {
		t.Errorf("b.Load after a's Touch has atime %v", got.ATime)
	}
	if err := a.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := load(); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("b.Load after a's Delete = %v, want ErrNotFound", err)
	}
	// Cross-instance writes decide under the lock, reading the file,
	// whatever the cache holds.
	if err := a.Create(ctx, "j", rec("j1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Load(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, "j", session.Record{Data: []byte("j2"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := b.Update(ctx, "j", session.Record{Data: []byte("lost"), ATime: t0, Version: 1}); !errors.Is(err, session.ErrConflict) {
		t.Errorf("b.Update with the version its cache held = %v, want ErrConflict", err)
	}
}

// A Load that read the old file before another instance's write must not
// cache what it read as current: the stale record would otherwise be
// served until the next change.
func TestCacheLoadRacingAWrite(t *testing.T) {
	dir := t.TempDir()
	a, b := newStore(t, dir), newStore(t, dir)
	ctx := context.Background()
	if err := b.Create(ctx, "k", rec("old", t0)); err != nil {
		t.Fatal(err)
	}
	a.testHookLoadRead = func() {
		a.testHookLoadRead = nil
		if err := b.Update(ctx, "k", session.Record{Data: []byte("new"), ATime: t0, Version: 1}); err != nil {
			t.Error(err)
		}
	}
	if got, err := a.Load(ctx, "k"); err != nil || string(got.Data) != "old" {
		t.Fatalf("racing Load = %q, %v; want what it read, %q", got.Data, err, "old")
	}
	if got, err := a.Load(ctx, "k"); err != nil || string(got.Data) != "new" {
		t.Errorf("Load after the race = %q, %v; want %q (a stale record was cached)", got.Data, err, "new")
	}
}

// A writer that died between its two counter updates leaves the counter
// odd: the key's records are then never cached, until the next write.
func TestCacheAfterAWriterDied(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	i := shardOf("k")
	s.cache.begin(i, "k") // and never end
	for range 2 {
		before := s.fileReads.Load()
		if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "v" {
			t.Fatalf("Load = %q, %v", got.Data, err)
		}
		if s.fileReads.Load() != before+1 {
			t.Errorf("a Load served a record cached while a write was in progress")
		}
	}
	if err := s.Update(ctx, "k", session.Record{Data: []byte("w"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	before := s.fileReads.Load()
	if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "w" || s.fileReads.Load() != before {
		t.Errorf("Load after the next write = %q, %v, read a file: %v; want a cache hit", got.Data, err, s.fileReads.Load() != before)
	}
}

func TestWithoutCounterTable(t *testing.T) {
	orig := openTable
	openTable = func(string, fs.FileMode) (*counterTable, error) { return nil, syscall.EMFILE }
	defer func() { openTable = orig }()
	logs := &logSink{}
	s := newStore(t, t.TempDir(), WithLogger(logs.logger()))
	if n := logs.count("without the read cache"); n != 1 {
		t.Errorf("running without the cache was logged %d times, want once", n)
	}
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "v" {
			t.Fatalf("Load = %q, %v", got.Data, err)
		}
	}
	if n := s.fileReads.Load(); n != 3 {
		t.Errorf("3 Loads without a cache read %d files", n)
	}
	if n := logs.count("without the read cache"); n != 1 {
		t.Errorf("logged %d times after use, want once", n)
	}
}

// A subdirectory removed under the store: writes recreate it, and the
// lock is taken on the new lock file, not on the one that was deleted with
// the old directory.
func TestSubdirectoryRemovedUnderTheStore(t *testing.T) {
	s := newStore(t, t.TempDir(), WithCacheSize(0))
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	dir := s.shards[shardOf("k")].dir
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("Load of a session whose directory was removed = %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx, "k", rec("again", t0)); err != nil {
		t.Fatalf("Create after the directory was removed: %v", err)
	}
	wantLockedOut(t, s, "k", "the recreated lock")
	if got, err := s.Load(ctx, "k"); err != nil || string(got.Data) != "again" {
		t.Errorf("Load = %q, %v", got.Data, err)
	}
}

// A lock file replaced under the store (another file renamed over it):
// the store notices when it next locks and takes the new file's lock, so
// it still excludes a store that opened the new file.
func TestLockFileReplacedUnderTheStore(t *testing.T) {
	s := newStore(t, t.TempDir(), WithCacheSize(0))
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	sh := &s.shards[shardOf("k")]
	if err := os.WriteFile(sh.lockPath+".new", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(sh.lockPath+".new", sh.lockPath); err != nil {
		t.Fatal(err)
	}
	wantLockedOut(t, s, "k", "the new lock file")
	if err := s.Update(ctx, "k", session.Record{Data: []byte("x"), ATime: t0, Version: 1}); err != nil {
		t.Errorf("Update once the lock is free = %v", err)
	}
}

// wantLockedOut checks that another store over s's directory, holding the
// lock of key's shard as it finds it at its path, keeps s's Update of key
// (at version 1) waiting, and then lets the lock go.
func wantLockedOut(t *testing.T, s *Store, key, lock string) {
	t.Helper()
	other := newStore(t, s.Dir(), WithCacheSize(0))
	sh := &other.shards[shardOf(key)]
	if err := other.lock(context.Background(), sh); err != nil {
		t.Fatal(err)
	}
	defer other.unlock(sh)
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Update(short, key, session.Record{Data: []byte("x"), ATime: t0, Version: 1}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Update while another store holds %s = %v, want DeadlineExceeded", lock, err)
	}
}

func TestCacheBudget(t *testing.T) {
	const size = numShards * 4096 // 4 KiB per shard
	s := newStore(t, t.TempDir(), WithCacheSize(size))
	ctx := context.Background()
	data := bytes.Repeat([]byte{'x'}, 1000)
	for i := range 2000 {
		if err := s.Create(ctx, fmt.Sprintf("k%d", i), session.Record{Data: data, ATime: t0, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte{'x'}, 5000)
	if err := s.Create(ctx, "big", session.Record{Data: big, ATime: t0, Created: t0}); err != nil {
		t.Fatal(err)
	}
	for i := range 2000 {
		if _, err := s.Load(ctx, fmt.Sprintf("k%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Load(ctx, "big"); err != nil {
		t.Fatal(err)
	}
	total, entries := 0, 0
	for i := range s.cache.shards {
		sh := &s.cache.shards[i]
		sh.mu.RLock()
		if sh.bytes > 4096 {
			t.Errorf("shard %d holds %d bytes, budget 4096", i, sh.bytes)
		}
		if _, ok := sh.m["big"]; ok {
			t.Errorf("a session larger than a shard's budget was cached")
		}
		total += sh.bytes
		entries += len(sh.m)
		sh.mu.RUnlock()
	}
	// 2000 entries of about 1.1 KB cannot fit 1 MiB; a full cache holds
	// about 3 per shard.
	if entries < numShards || total > size {
		t.Errorf("cache holds %d entries, %d bytes; want at least %d entries, at most %d bytes", entries, total, numShards, size)
	}
}

func TestClose(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	for i := range s.shards {
		if s.shards[i].lockFd >= 0 {
			t.Errorf("shard %d keeps its lock file open after Close", i)
		}
	}
	for _, p := range tree(t, s.Dir()) {
		if b := filepath.Base(p); strings.HasPrefix(b, sparePrefix) || strings.HasPrefix(b, storePrefix) {
			t.Errorf("Close left %s behind", p)
		}
	}
	errs := map[string]error{}
	_, errs["Load"] = s.Load(ctx, "k")
	errs["Create"] = s.Create(ctx, "n", rec("v", t0))
	errs["Update"] = s.Update(ctx, "k", session.Record{Version: 1})
	errs["Touch"] = s.Touch(ctx, "k", t0)
	errs["Delete"] = s.Delete(ctx, "k")
	_, errs["Cleanup"] = s.Cleanup(ctx, t0)
	for op, err := range errs {
		if !errors.Is(err, session.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", op, err)
		}
	}
}

func TestContext(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v", t0)); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	errs := map[string]error{}
	_, errs["Load"] = s.Load(cancelled, "k")
	errs["Create"] = s.Create(cancelled, "n", rec("v", t0))
	errs["Update"] = s.Update(cancelled, "k", session.Record{Version: 1})
	errs["Touch"] = s.Touch(cancelled, "k", t0)
	errs["Delete"] = s.Delete(cancelled, "k")
	_, errs["Cleanup"] = s.Cleanup(cancelled, t0)
	for op, err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context = %v, want context.Canceled", op, err)
		}
	}
	if got, err := s.Load(ctx, "k"); err != nil || got.Version != 1 {
		t.Errorf("cancelled calls changed the record: %+v, %v", got, err)
	}

	// Waiting for a lock another process (here: another store) holds ends
	// with the context.
	other := newStore(t, dir, WithCacheSize(0))
	sh := &other.shards[shardOf("k")]
	if err := other.lock(ctx, sh); err != nil {
		t.Fatal(err)
	}
	for name, op := range map[string]func(context.Context) error{
		"Update":  func(c context.Context) error { return s.Update(c, "k", session.Record{Version: 1}) },
		"Touch":   func(c context.Context) error { return s.Touch(c, "k", t0) },
		"Delete":  func(c context.Context) error { return s.Delete(c, "k") },
		"Create":  func(c context.Context) error { return s.Create(c, "k", rec("v", t0)) },
		"Cleanup": func(c context.Context) error { _, err := s.Cleanup(c, t0.Add(time.Hour)); return err },
	} {
		short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
		err := op(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s while the lock is held elsewhere = %v, want DeadlineExceeded", name, err)
		}
	}
	other.unlock(sh)
	if err := s.Touch(ctx, "k", t0.Add(1)); err != nil {
		t.Errorf("Touch after the lock was released: %v", err)
	}
}

func TestDurableWrites(t *testing.T) {
	s := newStore(t, t.TempDir(), WithDurable(true))
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("v1", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, "k", session.Record{Data: []byte("v2"), ATime: t0.Add(1), Version: 1}); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, "k", t0.Add(2)); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "k")
	if err != nil || string(got.Data) != "v2" || got.Version != 2 || !got.ATime.Equal(t0.Add(2)) || !got.Created.Equal(t0) {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if n, err := s.Cleanup(ctx, t0.Add(3)); err != nil || n != 1 {
		t.Errorf("Cleanup = %d, %v", n, err)
	}
	if err := s.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
}

func TestOptionsAndNew(t *testing.T) {
	dir := t.TempDir()
	bad := map[string]Option{
		"negative cache": WithCacheSize(-1),
		"nil logger":     WithLogger(nil),
		"file 0400":      WithPermissions(0o400, 0o700),
		"dir 0600":       WithPermissions(0o600, 0o600),
		"file setuid":    WithPermissions(0o600|fs.ModeSetuid, 0o700),
	}
	for name, o := range bad {
		if s, err := New(dir, o); err == nil {
			s.Close()
			t.Errorf("New with %s succeeded", name)
		}
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := New(file); err == nil {
		s.Close()
		t.Errorf("New over a regular file succeeded")
	}
	if s, err := New(""); err == nil {
		s.Close()
		t.Errorf("New(\"\") succeeded")
	}
	// A relative directory is made absolute: the store keeps working if
	// the process changes directory.
	t.Chdir(dir)
	s := newStore(t, "rel")
	if want := filepath.Join(dir, "rel"); s.Dir() != want {
		t.Errorf("Dir() = %s, want %s", s.Dir(), want)
	}
}

// efbigWriter runs in a helper process whose file size limit makes large
// writes fail with EFBIG, a stand-in for a full disk that needs no
// privileges. The session "k" exists already.
func efbigWriter(dir string) error {
	signal.Ignore(syscall.SIGXFSZ) // else the kernel kills the process instead of failing the write
	s, err := New(dir, WithCacheSize(0))
	if err != nil {
		return err
	}
	defer s.Close()
	ctx := context.Background()
	cur, err := s.Load(ctx, "k")
	if err != nil {
		return err
	}
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	lim.Cur = 64 << 10
	if err := unix.Setrlimit(unix.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	big := make([]byte, 1<<20)
	if err := s.Update(ctx, "k", session.Record{Data: big, ATime: t0, Version: cur.Version}); !errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("Update past the size limit = %v, want an error wrapping EFBIG", err)
	}
	if err := s.Create(ctx, "n", session.Record{Data: big, ATime: t0, Created: t0}); !errors.Is(err, syscall.EFBIG) {
		return fmt.Errorf("Create past the size limit = %v, want an error wrapping EFBIG", err)
	}
	return nil
}

func TestFailedWriteKeepsTheOldFile(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir, WithCacheSize(0))
	ctx := context.Background()
	if err := s.Create(ctx, "k", rec("precious", t0)); err != nil {
		t.Fatal(err)
	}
	cmd := helperCmd(ctx, "efbig", dir, "")
	if out, err := cmd.Output(); err != nil {
		t.Fatalf("helper: %v %s", err, out)
	}
	got, err := s.Load(ctx, "k")
	if err != nil || string(got.Data) != "precious" || got.Version != 1 {
		t.Errorf("after a failed Update: %q version %d, %v; want the old record", got.Data, got.Version, err)
	}
	if _, err := s.Load(ctx, "n"); !errors.Is(err, session.ErrNotFound) {
		t.Errorf("a failed Create left a record: %v", err)
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("failed writes left temp files: %v", temps)
	}
}

// Create writes a new session file in place when durability is off, and
// otherwise renames the spare into place; both make the same file, with
// the store's file mode less the umask, as open(2) gives it.
func TestCreateInPlaceAndThroughSpare(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	ctx := context.Background()
	for _, durable := range []bool{false, true} {
		dir := t.TempDir()
		s := newStore(t, dir, WithCacheSize(0), WithDurable(durable), WithPermissions(0o666, 0o750))
		key := "k"
		if err := s.Create(ctx, key, rec("v", t0)); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, key, rec("w", t0)); !errors.Is(err, session.ErrExists) {
			t.Errorf("durable %v: second Create = %v, want ErrExists", durable, err)
		}
		if got, err := s.Load(ctx, key); err != nil || string(got.Data) != "v" || got.Version != 1 {
			t.Errorf("durable %v: Load = %q version %d, %v", durable, got.Data, got.Version, err)
		}
		_, path := s.path(key)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if want := fs.FileMode(0o644); fi.Mode().Perm() != want {
			t.Errorf("durable %v: session file mode %v, want %v", durable, fi.Mode().Perm(), want)
		}
		if sh := &s.shards[shardOf(key)]; !durable && sh.spareOK {
			t.Errorf("a Create without durability made a spare file: it did not write in place")
		}
	}
}

// A file system that refuses to write a new file through the descriptor
// that created it without permission bits (as some network file systems
// do) makes the store create sessions through the spare from then on, and
// the Create that found out still succeeds, leaving nothing behind.
func TestCreateInPlaceRefused(t *testing.T) {
	dir := t.TempDir()
	var logs logSink
	s := newStore(t, dir, WithCacheSize(0), WithLogger(logs.logger()))
	ctx := context.Background()
	refusals := 0
	s.testHookInPlaceWrite = func(fd int, path string, buf []byte) error {
		refusals++
		return pathErr("write", path, syscall.EACCES)
	}
	for _, key := range []string{"a", "b"} {
		if err := s.Create(ctx, key, rec("v-"+key, t0)); err != nil {
			t.Fatalf("Create(%s) = %v", key, err)
		}
		if got, err := s.Load(ctx, key); err != nil || string(got.Data) != "v-"+key {
			t.Errorf("Load(%s) = %q, %v", key, got.Data, err)
		}
	}
	if refusals != 1 {
		t.Errorf("in-place creation tried %d times, want once: the store should stop after the refusal", refusals)
	}
	if err := s.Create(ctx, "a", rec("again", t0)); !errors.Is(err, session.ErrExists) {
		t.Errorf("Create of a taken key through the spare = %v, want ErrExists", err)
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("left behind: %v", temps)
	}
	if n := logs.count("through the spare file"); n != 1 {
		t.Errorf("logged the fallback %d times, want once", n)
	}
}

// A Create killed in the middle leaves its session file without
// permission bits. No reader takes it for a session, the key can be
// created again, and Cleanup removes such a file; Update, Touch and Delete
// find no session there.
func TestUnfinishedCreate(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := newStore(t, dir)
	leave := func(key, content string) string {
		t.Helper()
		_, path := s.path(key)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		return path
	}
	full, err := encode(rec("whole", t0))
	if err != nil {
		t.Fatal(err)
	}
	leave("a", string(full)) // written, killed before the chmod
	leave("b", "WSES")       // killed mid-write
	leave("c", "")
	for _, key := range []string{"a", "b", "c"} {
		if _, err := s.Load(ctx, key); !errors.Is(err, session.ErrNotFound) || errors.Is(err, ErrCorrupt) {
			t.Errorf("Load(%s) = %v, want ErrNotFound (and not corrupt)", key, err)
		}
		if err := s.Update(ctx, key, session.Record{Data: []byte("x"), ATime: t0, Version: 1}); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Update(%s) = %v, want ErrNotFound", key, err)
		}
		if err := s.Touch(ctx, key, t0); !errors.Is(err, session.ErrNotFound) {
			t.Errorf("Touch(%s) = %v, want ErrNotFound", key, err)
		}
	}
	if err := s.Create(ctx, "a", rec("new", t0)); err != nil {
		t.Fatalf("Create over an unfinished file: %v", err)
	}
	if got, err := s.Load(ctx, "a"); err != nil || string(got.Data) != "new" {
		t.Errorf("Load after Create = %q, %v", got.Data, err)
	}
	if err := s.Delete(ctx, "b"); err != nil {
		t.Errorf("Delete of an unfinished file = %v", err)
	}
	if temps := tempFiles(t, dir); len(temps) != 1 {
		t.Fatalf("unfinished files left: %v, want c's", temps)
	}
	r, err := s.Sweep(ctx, t0)
	if err != nil {
		t.Fatal(err)
	}
	if r.TempRemoved != 1 || r.Deleted != 0 || r.Skipped != 0 {
		t.Errorf("Sweep = %+v, want the unfinished file removed and nothing else", r)
	}
	if temps := tempFiles(t, dir); len(temps) != 0 {
		t.Errorf("after Sweep: %v", temps)
	}
	if got, err := s.Load(ctx, "a"); err != nil || string(got.Data) != "new" {
		t.Errorf("Sweep touched a live session: %q, %v", got.Data, err)
	}
}

// TestCacheTableRemovedByHand: someone deletes the .cache file while stores
// run; a store started afterwards maps a new table the old ones cannot
// see. The old store must stop serving its cache (and say so) rather than
// serve a session the new store deleted.
func TestCacheTableRemovedByHand(t *testing.T) {
	defer func(d time.Duration) { tableCheckInterval = d }(tableCheckInterval)
	tableCheckInterval = 0 // check on every Load
	dir := t.TempDir()
	var logs logSink
	old := newStore(t, dir, WithLogger(logs.logger()))
	ctx := context.Background()
	if err := old.Create(ctx, "k", rec("v1", t0)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Load(ctx, "k"); err != nil { // cached
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, cacheFileName)); err != nil {
		t.Fatal(err)
	}
	fresh := newStore(t, dir)
	if err := fresh.Delete(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Load(ctx, "k"); !errors.Is(err, session.ErrNotFound) {
		t.Fatalf("the old store's Load after the session was deleted through a new table: %v, want ErrNotFound", err)
	}
	if logs.count("counter table was removed or replaced") != 1 {
		t.Fatal("the store did not say why it stopped caching")
	}
	// It keeps working, reading files.
	if err := fresh.Create(ctx, "k", rec("v2", t0)); err != nil {
		t.Fatal(err)
	}
	if got, err := old.Load(ctx, "k"); err != nil || string(got.Data) != "v2" {
		t.Fatalf("old.Load = %q, %v", got.Data, err)
	}
}
