//go:build unix

package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io/fs"
	"os"
	"slices"
	"testing"
	"time"

	session "github.com/websession/websession/core"
)

// ownedKeys returns the sorted keys LoadOwned lists for owner, checking
// that each record is what Load returns.
func ownedKeys(tb testing.TB, s *Store, owner string) []string {
	tb.Helper()
	ctx := context.Background()
	got, err := s.LoadOwned(ctx, owner)
	if err != nil {
		tb.Fatalf("LoadOwned(%s): %v", owner, err)
	}
	var keys []string
	for _, o := range got {
		rec, err := s.Load(ctx, o.Key)
		if err != nil || rec.Owner != owner || rec.Version != o.Record.Version || string(rec.Data) != string(o.Record.Data) || !rec.ATime.Equal(o.Record.ATime) {
			tb.Errorf("LoadOwned(%s) gave %s as %+v; Load gives %+v, %v", owner, o.Key, o.Record, rec, err)
		}
		keys = append(keys, o.Key)
	}
	slices.Sort(keys)
	return keys
}

func wantOwned(tb testing.TB, s *Store, owner string, want ...string) {
	tb.Helper()
	if got := ownedKeys(tb, s, owner); !slices.Equal(got, want) {
		tb.Errorf("LoadOwned(%s) = %v, want %v", owner, got, want)
	}
}

func owned(data, owner string, at time.Time) session.Record {
	return session.Record{Data: []byte(data), ATime: at, Created: at, Owner: owner}
}

func TestOwnerIndex(t *testing.T) {
	dir := t.TempDir()
	s := newStore(t, dir)
	ctx := context.Background()
	for key, owner := range map[string]string{"a1": "A", "a2": "A", "b1": "B", "n1": ""} {
		if err := s.Create(ctx, key, owned(key, owner, t0)); err != nil {
			t.Fatal(err)
		}
	}
	wantOwned(t, s, "A", "a1", "a2")
	wantOwned(t, s, "B", "b1")
	wantOwned(t, s, "C")
	if _, err := s.LoadOwned(ctx, "not/a key"); !errors.Is(err, session.ErrInvalidKey) {
		t.Errorf("LoadOwned with an invalid owner = %v, want ErrInvalidKey", err)
	}

	// Update moves a session between owners; Touch keeps its owner.
	if err := s.Update(ctx, "a2", session.Record{Data: []byte("moved"), ATime: t0, Version: 1, Owner: "B"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Touch(ctx, "b1", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	wantOwned(t, s, "A", "a1")
	wantOwned(t, s, "B", "a2", "b1")

	// Another instance, and the same directory after a restart, see the
	// same index.
	other := newStore(t, dir, WithCacheSize(0))
	wantOwned(t, other, "B", "a2", "b1")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = newStore(t, dir)
	wantOwned(t, s, "A", "a1")
	wantOwned(t, s, "B", "a2", "b1")

	// Clearing the owner, Delete and Cleanup take keys out; an owner with
	// no session left has no index file.
	if err := s.Update(ctx, "a1", session.Record{Data: []byte("anonymous"), ATime: t0, Version: 1}); err != nil {
		t.Fatal(err)
	}
	wantOwned(t, s, "A")
	if _, path := s.indexPath("A"); fileExists(t, path) {
		t.Errorf("owner A has no session, but its index file %s remains", path)
	}
	if err := s.Delete(ctx, "b1"); err != nil {
		t.Fatal(err)
	}
	wantOwned(t, s, "B", "a2")
	if n, err := s.Cleanup(ctx, t0.Add(time.Minute)); err != nil || n != 3 { // a1, a2, n1
		t.Fatalf("Cleanup = %d, %v; want 3", n, err)
	}
	wantOwned(t, s, "B")
	wantOwned(t, other, "B")
}

func fileExists(tb testing.TB, path string) bool {
	tb.Helper()
	_, err := os.Lstat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		tb.Fatal(err)
	}
	return err == nil
}

// The state a crash between the two writes leaves (the index lists a key
// whose session was never written, or was written with another owner) is
// never listed, and LoadOwned removes it from the index.
func TestOwnerIndexFiltersAndRepairsStaleKeys(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	if err := s.Create(ctx, "mine", owned("m", "O", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "other", owned("o", "X", t0)); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, "anon", owned("a", "", t0)); err != nil {
		t.Fatal(err)
	}
	sh, path := s.indexPath("O")
	if err := s.lock(ctx, sh); err != nil {
		t.Fatal(err)
	}
	err := s.write(sh, path, encodeIndex([]string{"gone", "mine", "other", "anon"}), true)
	s.unlock(sh)
	if err != nil {
		t.Fatal(err)
	}
	wantOwned(t, s, "O", "mine")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := decodeIndex(b); err != nil || !slices.Equal(keys, []string{"mine"}) {
		t.Errorf("index after LoadOwned = %v, %v; want the stale keys removed", keys, err)
	}
	wantOwned(t, s, "X", "other")
}

// encodeV1 is a session file as versions before owners wrote it.
func encodeV1(rec session.Record) []byte {
	b := make([]byte, 48, 48+len(rec.Data)+4)
	copy(b, "WSES")
	binary.BigEndian.PutUint16(b[4:6], 1)
	putTime(b[8:20], rec.ATime)
	putTime(b[20:32], rec.Created)
	binary.BigEndian.PutUint64(b[32:40], rec.Version)
	binary.BigEndian.PutUint32(b[40:44], uint32(len(rec.Data)))
	binary.BigEndian.PutUint32(b[44:48], crc32.Checksum(b[:44], castagnoli))
	b = append(b, rec.Data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

func TestVersion1FilesStillLoad(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := context.Background()
	_, path := s.path("old")
	if err := os.WriteFile(path, encodeV1(session.Record{Data: []byte("from v1"), ATime: t0, Created: t0.Add(-time.Hour), Version: 7}), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(ctx, "old")
	if err != nil || string(got.Data) != "from v1" || got.Version != 7 || !got.ATime.Equal(t0) || !got.Created.Equal(t0.Add(-time.Hour)) || got.Owner != "" {
		t.Fatalf("Load of a version 1 file = %+v, %v", got, err)
	}
	if n, err := s.Cleanup(ctx, t0); err != nil || n != 0 {
		t.Errorf("Cleanup before its atime = %d, %v", n, err)
	}
	if err := s.Update(ctx, "old", session.Record{Data: []byte("now v2"), ATime: t0, Version: 7, Owner: "O"}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || b[5] != formatV2 {
		t.Errorf("after Update the file is format %d, want %d (%v)", b[5], formatV2, err)
	}
	wantOwned(t, s, "O", "old")
}
