package disk

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	session "github.com/websession/websession/core"
)

// SweepResult tells what a Sweep did.
type SweepResult struct {
	// Deleted counts the sessions removed because their ATime was before
	// the cutoff.
	Deleted int
	// TempRemoved counts files left by stores that crashed: their spare
	// files and their .store files (and temp files of older versions).
	TempRemoved int
	// Skipped counts entries that are not sessions of this store (foreign
	// or corrupt files, directories, links), left in place. Each is logged
	// the first time this store meets it.
	Skipped int
}

// Cleanup implements session.Store: it is Sweep, returning the number of
// sessions deleted.
func (s *Store) Cleanup(ctx context.Context, cutoff time.Time) (int, error) {
	r, err := s.Sweep(ctx, cutoff)
	return r.Deleted, err
}

// Sweep deletes every session whose ATime is strictly before cutoff and the
// files that crashed stores left behind (spare files of stores that are no
// longer open, told by their unlocked .store file). It reads only the 48-byte
// header of each session file, never its data, and takes each
// subdirectory's write lock only if it found something to delete there,
// and only for the deletions (rechecking each file under the lock). Files
// that vanish under it are passed over; anything that is not a session of
// this store is left alone, counted in Skipped, and logged once: unlike
// web.py's DiskStore, which deletes anything old in its directory, a
// misconfigured root never costs someone's files.
//
// Sweep checks ctx between files and stops, with what it did so far and an
// error wrapping ctx's, when ctx ends.
func (s *Store) Sweep(ctx context.Context, cutoff time.Time) (SweepResult, error) {
	var r SweepResult
	if err := s.enter(ctx, "cleanup"); err != nil {
		return r, err
	}
	defer s.leave()
	alive := make(map[string]bool)
	if err := s.sweepRoot(ctx, &r, alive); err != nil {
		return r, opErr("cleanup", err)
	}
	for i := range s.shards {
		if err := s.sweepShard(ctx, i, cutoff, &r, alive); err != nil {
			return r, opErr("cleanup", err)
		}
	}
	for i := range s.owners {
		if err := s.sweepOwnerShard(ctx, i, &r, alive); err != nil {
			return r, opErr("cleanup", err)
		}
	}
	return r, nil
}

// sweepRoot removes the .store files of stores no longer open, noting in
// alive which tokens belong to open stores, and reports what else is in
// the root besides the shard directories.
func (s *Store) sweepRoot(ctx context.Context, r *SweepResult, alive map[string]bool) error {
	entries, err := readDir(s.root)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := s.sweepCheck(ctx); err != nil {
			return err
		}
		name := e.Name()
		switch {
		case isShardName(name) && e.IsDir(), name == ownersDir && e.IsDir(), name == cacheFileName && e.Type().IsRegular():
			continue
		case strings.HasPrefix(name, storePrefix) && e.Type().IsRegular():
			tok := name[len(storePrefix):]
			if tok == s.token {
				alive[tok] = true
				continue
			}
			path := filepath.Join(s.root, name)
			open, err := storeOpen(path)
			if err != nil {
				return err
			}
			alive[tok] = open
			if !open {
				if err := removeFile(path); err == nil {
					r.TempRemoved++
				} else if !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
			continue
		}
		r.Skipped++
		s.reportOnce(filepath.Join(s.root, name), "disk: cleanup skipped an entry that is not a session subdirectory", nil)
	}
	return nil
}

// orphanSpare reports whether the spare of the store with token tok was
// left by a store that is no longer open.
func (s *Store) orphanSpare(tok string, alive map[string]bool) (bool, error) {
	open, ok := alive[tok]
	if !ok {
		var err error
		if open, err = storeOpen(filepath.Join(s.root, storePrefix+tok)); err != nil {
			return false, err
		}
		alive[tok] = open
	}
	return !open, nil
}

// storeOpen reports whether the store whose .store file is at path is
// open: it holds the file locked.
func storeOpen(path string) (bool, error) {
	fd, err := openRead(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer closeFd(fd)
	free, err := tryLock(fd, path, false)
	return !free, err
}

func (s *Store) sweepCheck(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closing.Load() {
		return session.ErrClosed
	}
	return nil
}

func (s *Store) sweepShard(ctx context.Context, i int, cutoff time.Time, r *SweepResult, alive map[string]bool) error {
	sh := &s.shards[i]
	entries, err := readDir(sh.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var expired, temps, unfinished []string
	for _, e := range entries {
		if err := s.sweepCheck(ctx); err != nil {
			return err
		}
		name := e.Name()
		path := sh.dir + string(filepath.Separator) + name
		switch {
		case name == lockName || name == s.spareName:
			continue
		case strings.HasPrefix(name, tempPrefix) && e.Type().IsRegular():
			temps = append(temps, path)
			continue
		case strings.HasPrefix(name, sparePrefix) && e.Type().IsRegular():
			// The spare of another store: left by a crash if that store's
			// .store file is gone or unlocked.
			orphan, err := s.orphanSpare(name[len(sparePrefix):], alive)
			if err != nil {
				return err
			}
			if orphan {
				temps = append(temps, path)
			}
			continue
		}
		key, ok := keyOfName(name)
		if !ok || shardOf(key) != i || !e.Type().IsRegular() {
			r.Skipped++
			s.reportOnce(path, "disk: cleanup skipped a file that is not a session", nil)
			continue
		}
		if s.testHookSweepEntry != nil {
			s.testHookSweepEntry(path)
		}
		h, err := s.sweepHeader(ctx, path)
		switch {
		case errors.Is(err, errUnfinished):
			unfinished = append(unfinished, path)
			continue
		case errors.Is(err, fs.ErrNotExist):
			continue // deleted or replaced meanwhile: nothing to do
		case err != nil:
			// Corrupt, unreadable (permissions), or an I/O error on this
			// one file: none is a reason to stop cleaning the others.
			r.Skipped++
			s.reportOnce(path, "disk: cleanup skipped a file it cannot read as a session", err)
			continue
		}
		if h.atime.Before(cutoff) {
			expired = append(expired, key)
		}
	}
	if len(expired) == 0 && len(temps) == 0 && len(unfinished) == 0 {
		return nil
	}
	if err := s.lock(ctx, sh); err != nil {
		return err
	}
	defer s.unlock(sh)
	removed := false
	var owned [][2]string // owner, key of deleted sessions
	for _, key := range expired {
		_, path := s.path(key)
		// Recheck under the lock: the session may have been used since.
		b, err := s.readLocked(path, maxHeaderSize)
		if err != nil {
			continue
		}
		h, err := decodeHeader(b)
		if err != nil || !h.atime.Before(cutoff) {
			continue
		}
		ctr := s.cache.begin(i, key)
		err = removeFile(path)
		s.cache.end(ctr)
		s.cache.evict(i, key)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		r.Deleted++
		removed = true
		if h.owner != "" {
			owned = append(owned, [2]string{h.owner, key})
		}
	}
	// Session files a Create was writing: every creator holds this lock,
	// so one still unfinished now was left by a crash.
	for _, path := range unfinished {
		if fi, err := lstatPath(path); err == nil && fi.unfinished() {
			temps = append(temps, path)
		}
	}
	// Temp files and the spares of closed stores: no live store writes
	// them (a store's spare is written only under this lock, by that
	// store, which is gone), so no clock or mtime is needed to tell.
	for _, path := range temps {
		if err := removeFile(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return err
		}
		r.TempRemoved++
		removed = true
	}
	if removed && s.durable {
		if err := syncDir(sh.dir); err != nil {
			return err
		}
	}
	for _, ok := range owned {
		s.indexRemoveAfter(ctx, ok[0], ok[1])
	}
	return nil
}

// sweepOwnerShard removes what crashed stores left in owner shard i.
func (s *Store) sweepOwnerShard(ctx context.Context, i int, r *SweepResult, alive map[string]bool) error {
	sh := &s.owners[i]
	entries, err := readDir(sh.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var temps []string
	for _, e := range entries {
		name := e.Name()
		if name == s.spareName || !strings.HasPrefix(name, sparePrefix) || !e.Type().IsRegular() {
			continue
		}
		orphan, err := s.orphanSpare(name[len(sparePrefix):], alive)
		if err != nil {
			return err
		}
		if orphan {
			temps = append(temps, sh.dir+string(filepath.Separator)+name)
		}
	}
	if len(temps) == 0 {
		return nil
	}
	if err := s.lock(ctx, sh); err != nil {
		return err
	}
	defer s.unlock(sh)
	for _, path := range temps {
		if err := removeFile(path); err == nil {
			r.TempRemoved++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// sweepHeader reads the header of the session file at path without the
// shard's lock.
func (s *Store) sweepHeader(ctx context.Context, path string) (header, error) {
	b, err := s.readStable(ctx, path, maxHeaderSize)
	if err != nil {
		return header{}, err
	}
	return decodeHeader(b)
}

// readDir lists dir without sorting (os.ReadDir sorts, which a sweep does
// not need).
func readDir(dir string) ([]fs.DirEntry, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}
