package disk

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"slices"

	session "github.com/websession/websession/core"
)

// The owner index: for each owner, one small file listing the keys of its
// sessions, under <root>/owners/<shard>/, named like a session file after
// the owner key and sharded by the same hash. Index files are written like
// session files (a spare swapped in atomically) under the owner shard's
// own lock, so the index is as durable, as crash-safe and as shared
// between processes as the sessions.
//
// A session's file and its owner's index file cannot change in one atomic
// step. The index is therefore kept a superset of the truth: a key is added
// to an owner's index before a session with that Owner is written, and
// removed after the session is gone or has another Owner. Between the two
// steps, and forever after a crash between them, the index may list a key
// that is not (or no longer) that owner's; LoadOwned checks every listed
// key against the Owner stored in its session file, never lists such a
// key, and removes it from the index. No session of an owner is ever
// missing from its index.
//
// Locks: a session shard's lock may be held while taking an owner shard's
// lock, never the other way round, and at most one lock of each kind is
// held at a time, so two processes cannot deadlock.

const ownersDir = "owners"

// The index file format. All integers are big-endian.
//
//	offset size  field
//	     0    4  magic "WSOI"
//	     4    2  format version (1)
//	     6    4  number of keys k
//	    10       k times: key length (1 byte, 1..128), key
//	   end    4  CRC-32C of everything before
var indexMagic = [4]byte{'W', 'S', 'O', 'I'}

const (
	indexV1 = 1
	// maxIndexSize bounds what LoadOwned reads: a million keys of the
	// longest kind, far beyond any one owner's sessions.
	maxIndexSize = 10 + 1_000_000*(1+session.MaxKeyLen) + 4
)

func encodeIndex(keys []string) []byte {
	n := 10 + 4
	for _, k := range keys {
		n += 1 + len(k)
	}
	buf := make([]byte, 10, n)
	copy(buf, indexMagic[:])
	binary.BigEndian.PutUint16(buf[4:6], indexV1)
	binary.BigEndian.PutUint32(buf[6:10], uint32(len(keys)))
	for _, k := range keys {
		buf = append(buf, byte(len(k)))
		buf = append(buf, k...)
	}
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

func decodeIndex(buf []byte) ([]string, error) {
	if len(buf) < 14 || [4]byte(buf[0:4]) != indexMagic {
		return nil, corrupt("not an owner index")
	}
	end := len(buf) - 4
	if binary.BigEndian.Uint32(buf[end:]) != crc32.Checksum(buf[:end], castagnoli) {
		return nil, corrupt("owner index checksum mismatch")
	}
	if v := binary.BigEndian.Uint16(buf[4:6]); v != indexV1 {
		return nil, corrupt("unknown owner index version %d", v)
	}
	n := binary.BigEndian.Uint32(buf[6:10])
	keys := make([]string, 0, min(n, 1024))
	for p := 10; p < end; {
		l := int(buf[p])
		if p+1+l > end {
			return nil, corrupt("owner index truncated")
		}
		k := string(buf[p+1 : p+1+l])
		if !session.ValidKey(k) {
			return nil, corrupt("owner index holds an invalid key")
		}
		keys = append(keys, k)
		p += 1 + l
	}
	if uint32(len(keys)) != n {
		return nil, corrupt("owner index holds %d keys, its header says %d", len(keys), n)
	}
	return keys, nil
}

// indexPath returns the owner shard and the index file path of owner,
// which must be valid.
func (s *Store) indexPath(owner string) (*shard, string) {
	sh := &s.owners[shardOf(owner)]
	return sh, sh.dir + string(filepath.Separator) + fileNames.EncodeToString([]byte(owner))
}

// readIndex returns the keys listed in the index file at path, none if it
// does not exist.
func readIndex(buf []byte, err error) ([]string, error) {
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return decodeIndex(buf)
}

// indexAdd lists key in owner's index. The caller holds key's session
// shard lock.
func (s *Store) indexAdd(ctx context.Context, owner, key string) error {
	return s.indexChange(ctx, owner, key, true)
}

// indexRemoveAfter takes key out of owner's index once the session is
// gone or has another owner. A failure leaves the key listed, which
// LoadOwned tolerates (and repairs), so it is logged, not returned: the
// write it follows has happened.
func (s *Store) indexRemoveAfter(ctx context.Context, owner, key string) {
	if err := s.indexChange(ctx, owner, key, false); err != nil {
		s.log.Warn("disk: cannot remove a session from its owner's index; LoadOwned will", "owner", owner, "err", err)
	}
}

func (s *Store) indexChange(ctx context.Context, owner, key string, add bool) error {
	sh, path := s.indexPath(owner)
	if err := s.lock(ctx, sh); err != nil {
		return fmt.Errorf("owner index: %w", err)
	}
	defer s.unlock(sh)
	keys, err := readIndex(s.readLocked(path, maxIndexSize))
	if err != nil {
		return fmt.Errorf("owner index %s: %w", path, err)
	}
	i := slices.Index(keys, key)
	switch {
	case add && i >= 0, !add && i < 0:
		return nil
	case add:
		keys = append(keys, key)
	default:
		keys = slices.Delete(keys, i, i+1)
	}
	if len(keys) == 0 {
		err := removeFile(path)
		if err == nil && s.durable {
			err = syncDir(sh.dir)
		}
		if errors.Is(err, fs.ErrNotExist) {
			err = nil
		}
		return err
	}
	_, statErr := lstatPath(path)
	return s.write(sh, path, encodeIndex(keys), statErr == nil)
}

var _ session.OwnerIndex = (*Store)(nil)

// LoadOwned implements session.OwnerIndex. It reads owner's index file and
// then each listed session (from the read cache where it can), so its cost
// grows with that owner's sessions, not with the store's. A listed key
// whose session is gone or has another Owner (left by a crash, or by a
// write in progress) is not returned, and is removed from the index.
func (s *Store) LoadOwned(ctx context.Context, owner string) ([]session.OwnedRecord, error) {
	if err := s.enterKey(ctx, "load owned", owner); err != nil {
		return nil, err
	}
	defer s.leave()
	_, path := s.indexPath(owner)
	keys, err := readIndex(s.readStable(ctx, path, maxIndexSize))
	if err != nil {
		return nil, opErr("load owned", fmt.Errorf("owner index %s: %w", path, err))
	}
	out := make([]session.OwnedRecord, 0, len(keys))
	var stale []string
	for _, key := range keys {
		rec, err := s.load(ctx, "load owned", key)
		switch {
		case errors.Is(err, session.ErrNotFound):
			stale = append(stale, key)
		case err != nil:
			return nil, err
		case rec.Owner != owner:
			stale = append(stale, key)
		default:
			out = append(out, session.OwnedRecord{Key: key, Record: rec})
		}
	}
	for _, key := range stale {
		s.repairIndex(ctx, owner, key)
	}
	return out, nil
}

// repairIndex removes key from owner's index if, under key's session
// shard lock (so that no Create or Update of it is half done), its session
// is absent or has another owner.
func (s *Store) repairIndex(ctx context.Context, owner, key string) {
	i, path := s.path(key)
	sh := &s.shards[i]
	if err := s.lock(ctx, sh); err != nil {
		return
	}
	defer s.unlock(sh)
	b, err := s.readLocked(path, maxHeaderSize)
	if err == nil {
		if h, herr := decodeHeader(b); herr == nil && h.owner == owner {
			return // written meanwhile: it is the owner's
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return
	}
	s.indexRemoveAfter(ctx, owner, key)
}
