package disk

import (
	"context"
	"encoding/base32"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
	session "github.com/websession/websession/core"
)

// numShards is the number of subdirectories sessions are spread over. With
// a million sessions each holds about 4000 files, which every common file
// system lists and searches quickly.
const numShards = 256

// Names under the root that are not session files. Session file names are
// lower-case base32 (a-z, 2-7), so none can start with a dot.
const (
	tempPrefix = ".tmp-"
	lockName   = ".lock"
)

// fileNames maps a key to a file name. Keys are case-sensitive, but many
// file systems (macOS, Windows) are not: lower-case base32 keeps two keys
// that differ only in case from naming the same file. A 128-byte key gives
// a 205-byte name, within the usual 255-byte limit.
var fileNames = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Store is a session.Store keeping one file per session under a root
// directory. It is safe for concurrent use, also by several processes
// sharing the directory. Create one with New and release it with Close.
type Store struct {
	root     string
	fileMode fs.FileMode
	dirMode  fs.FileMode
	durable  bool
	log      *slog.Logger

	shards [numShards]shard

	// life is held shared by every method for its whole run and
	// exclusively by Close, so Close never pulls a lock file or the watcher
	// from under a running call.
	life    sync.RWMutex
	closed  bool
	closing atomic.Bool

	cache cache

	skipMu   sync.Mutex
	reported map[string]struct{}

	// fileReads counts whole-file reads, for the package's own tests.
	fileReads atomic.Int64
	// testHookLoadRead, if set, runs in Load between reading a file and
	// inserting it into the cache.
	testHookLoadRead func()
	// testHookSweepEntry, if set, runs in Sweep before it reads the header
	// of the session file at path.
	testHookSweepEntry func(path string)
}

type shard struct {
	dir string
	// sem serialises this process's writers to the shard; the flock on
	// lockFile then excludes other processes (and other Store values).
	// flock alone would not do: every goroutine here shares one open file
	// description, and flock locks belong to open file descriptions.
	sem      chan struct{}
	lockFile *os.File // guarded by sem; opened on first use
}

var _ session.Store = (*Store)(nil)
var _ io.Closer = (*Store)(nil)

// New opens the store rooted at dir, creating the directory and its
// subdirectories if missing, and starts the file watcher of the read cache.
// If the watcher cannot start (inotify limits, a network file system), the
// store logs it once and works without the cache.
func New(dir string, opts ...Option) (*Store, error) {
	if err := platformSupported(); err != nil {
		return nil, opErr("new", err)
	}
	opt := options{fileMode: DefaultFileMode, dirMode: DefaultDirMode, cacheSize: DefaultCacheSize}
	for _, o := range opts {
		if err := o(&opt); err != nil {
			return nil, opErr("new", err)
		}
	}
	if opt.logger == nil {
		opt.logger = slog.Default()
	}
	if dir == "" {
		return nil, opErr("new", errors.New("empty directory name"))
	}
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, opErr("new", err)
	}
	if err := os.MkdirAll(root, opt.dirMode); err != nil {
		return nil, opErr("new", err)
	}
	if fi, err := os.Stat(root); err != nil {
		return nil, opErr("new", err)
	} else if !fi.IsDir() {
		return nil, opErr("new", fmt.Errorf("%s is not a directory", root))
	}
	s := &Store{
		root:     root,
		fileMode: opt.fileMode,
		dirMode:  opt.dirMode,
		durable:  opt.durable,
		log:      opt.logger,
		reported: make(map[string]struct{}),
	}
	for i := range s.shards {
		sh := &s.shards[i]
		sh.dir = filepath.Join(root, shardName(i))
		sh.sem = make(chan struct{}, 1)
		if err := os.Mkdir(sh.dir, opt.dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, opErr("new", err)
		}
	}
	if opt.durable {
		if err := syncDir(root); err != nil {
			return nil, opErr("new", err)
		}
	}
	s.cache.init(s, opt.cacheSize)
	return s, nil
}

func shardName(i int) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[i>>4], hex[i&15]})
}

// shardOf picks the shard of key by FNV-1a, which every process computes
// alike (unlike hash/maphash, whose seed is per process) and which mixes
// all bytes, so keys sharing a prefix still spread evenly.
func shardOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int((h ^ h>>8 ^ h>>16 ^ h>>24) % numShards)
}

// Dir returns the absolute path of the store's root directory.
func (s *Store) Dir() string { return s.root }

// MaxDataSize returns the largest Record.Data the store holds: 16 MiB, far
// above the manager's default limit (session.DefaultMaxDataSize). Larger
// data is refused with an error wrapping session.ErrTooLarge, and a file
// whose header claims more is corrupt, so a hostile or damaged file cannot
// make the store allocate gigabytes.
func (s *Store) MaxDataSize() int { return maxDataSize }

// enter starts a method: it checks ctx and that the store is open, and
// holds life shared until leave.
func (s *Store) enter(ctx context.Context, op string) error {
	if err := ctx.Err(); err != nil {
		return opErr(op, err)
	}
	s.life.RLock()
	if s.closed {
		s.life.RUnlock()
		return opErr(op, session.ErrClosed)
	}
	return nil
}

// enterKey is enter for a method on key, which it checks before any path
// is built from it.
func (s *Store) enterKey(ctx context.Context, op, key string) error {
	if err := s.enter(ctx, op); err != nil {
		return err
	}
	if !session.ValidKey(key) {
		s.leave()
		return opErr(op, fmt.Errorf("%w (%d bytes)", session.ErrInvalidKey, len(key)))
	}
	return nil
}

func (s *Store) leave() { s.life.RUnlock() }

// path returns the shard and the file path of key, which must be valid.
func (s *Store) path(key string) (int, string) {
	i := shardOf(key)
	return i, s.pathIn(i, key)
}

// pathIn returns the file path of key, which must be valid, in shard i,
// which must be key's.
func (s *Store) pathIn(i int, key string) string {
	return s.shards[i].dir + string(filepath.Separator) + fileNames.EncodeToString([]byte(key))
}

// keyOfName returns the key whose file is named name, if name is the
// canonical name of a valid key.
func keyOfName(name string) (string, bool) {
	if len(name) == 0 || len(name) > fileNames.EncodedLen(session.MaxKeyLen) {
		return "", false
	}
	b, err := fileNames.DecodeString(name)
	if err != nil {
		return "", false
	}
	key := string(b)
	// base32 decoding ignores the unused low bits of the last character;
	// only the canonical spelling names a session.
	if !session.ValidKey(key) || fileNames.EncodeToString(b) != name {
		return "", false
	}
	return key, true
}

// Load implements session.Store. It takes no lock: files are replaced by
// rename, so a reader sees either the old or the new file, whole.
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.enterKey(ctx, "load", key); err != nil {
		return session.Record{}, err
	}
	defer s.leave()
	i := shardOf(key)
	rec, gen, ok := s.cache.get(i, key)
	if ok {
		return rec, nil
	}
	path := s.pathIn(i, key)
	buf, err := s.readFile(path)
	if err != nil {
		return session.Record{}, s.readErr("load", path, err)
	}
	rec, err = decode(buf)
	if err != nil {
		return session.Record{}, s.readErr("load", path, err)
	}
	if s.testHookLoadRead != nil {
		s.testHookLoadRead()
	}
	s.cache.put(i, key, gen, rec)
	return rec, nil
}

// readFile returns the content of the session file at path.
func (s *Store) readFile(path string) ([]byte, error) {
	s.fileReads.Add(1)
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if size < overhead || size > maxFileSize {
		return nil, corrupt("%d bytes, not the size of a session file", size)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(f, buf); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, corrupt("shorter than its size")
		}
		return nil, err
	}
	return buf, nil
}

// readHeader returns the header of the session file at path, reading
// nothing of its data.
func (s *Store) readHeader(path string) (header, error) {
	f, _, err := openRegular(path)
	if err != nil {
		return header{}, err
	}
	defer f.Close()
	var b [headerSize]byte
	n, err := io.ReadFull(f, b[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return header{}, err
	}
	return decodeHeader(b[:n])
}

// openRegular opens path for reading and returns its size, refusing
// symbolic links and anything but a regular file (as corrupt: it cannot be
// a session).
func openRegular(path string) (*os.File, int64, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoFollow, 0)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, 0, err
		}
		// ELOOP from O_NOFOLLOW: a symbolic link where a session should be.
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, 0, corrupt("%s is a %v, not a regular file", path, fi.Mode().Type())
		}
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, 0, corrupt("%s is a %v, not a regular file", path, fi.Mode().Type())
	}
	return f, fi.Size(), nil
}

// Create implements session.Store.
func (s *Store) Create(ctx context.Context, key string, rec session.Record) error {
	if err := s.enterKey(ctx, "create", key); err != nil {
		return err
	}
	defer s.leave()
	rec.Version = 1
	buf, err := encode(rec)
	if err != nil {
		return opErr("create", err)
	}
	i, path := s.path(key)
	sh := &s.shards[i]
	if err := s.lock(ctx, sh); err != nil {
		return opErr("create", err)
	}
	defer s.unlock(sh)
	if _, err := os.Lstat(path); err == nil {
		return opErr("create", session.ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return opErr("create", err)
	}
	return s.commit("create", i, key, path, buf)
}

// Update implements session.Store.
func (s *Store) Update(ctx context.Context, key string, rec session.Record) error {
	if err := s.enterKey(ctx, "update", key); err != nil {
		return err
	}
	defer s.leave()
	if len(rec.Data) > maxDataSize {
		return opErr("update", tooLarge(len(rec.Data)))
	}
	i, path := s.path(key)
	sh := &s.shards[i]
	if err := s.lock(ctx, sh); err != nil {
		return opErr("update", err)
	}
	defer s.unlock(sh)
	h, err := s.readHeader(path)
	if err != nil {
		return s.readErr("update", path, err)
	}
	if h.version != rec.Version {
		return opErr("update", session.ErrConflict)
	}
	buf, err := encode(session.Record{Data: rec.Data, ATime: rec.ATime, Created: h.created, Version: h.version + 1})
	if err != nil {
		return opErr("update", err)
	}
	return s.commit("update", i, key, path, buf)
}

// Touch implements session.Store. It rewrites the whole file, data
// included: only a rename replaces a file atomically.
func (s *Store) Touch(ctx context.Context, key string, atime time.Time) error {
	if err := s.enterKey(ctx, "touch", key); err != nil {
		return err
	}
	defer s.leave()
	i, path := s.path(key)
	sh := &s.shards[i]
	if err := s.lock(ctx, sh); err != nil {
		return opErr("touch", err)
	}
	defer s.unlock(sh)
	buf, err := s.readFile(path)
	if err == nil {
		_, err = decode(buf)
	}
	if err != nil {
		return s.readErr("touch", path, err)
	}
	setATime(buf, atime)
	return s.commit("touch", i, key, path, buf)
}

// commit ends Create, Update and Touch: it writes buf over key's file and
// evicts key from the cache, even on error, since a failed directory fsync
// comes after the rename.
func (s *Store) commit(op string, i int, key, path string, buf []byte) error {
	err := s.write(&s.shards[i], path, buf)
	s.cache.evict(i, key)
	if err != nil {
		return opErr(op, err)
	}
	return nil
}

// Delete implements session.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if err := s.enterKey(ctx, "delete", key); err != nil {
		return err
	}
	defer s.leave()
	i, path := s.path(key)
	sh := &s.shards[i]
	if err := s.lock(ctx, sh); err != nil {
		return opErr("delete", err)
	}
	defer s.unlock(sh)
	err := os.Remove(path)
	s.cache.evict(i, key)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return opErr("delete", err)
	}
	if s.durable {
		if err := syncDir(sh.dir); err != nil {
			return opErr("delete", err)
		}
	}
	return nil
}

// write replaces the file at path with buf atomically: it writes a temp
// file in the same directory and renames it over path. The caller holds
// the shard's lock, so no temp file of a live writer survives the unlock:
// any that Cleanup finds under the lock was left by a crash. On error the
// old file is intact and the temp file is gone.
func (s *Store) write(sh *shard, path string, buf []byte) error {
	var f *os.File
	var tmp string
	for try := 0; ; try++ {
		tmp = sh.dir + string(filepath.Separator) + tempPrefix + strconv.FormatUint(rand.Uint64(), 36)
		var err error
		f, err = os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, s.fileMode)
		if err == nil {
			break
		}
		if errors.Is(err, fs.ErrExist) && try < 3 {
			continue
		}
		return err
	}
	_, err := f.Write(buf)
	if err == nil && s.durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if s.durable {
		return syncDir(sh.dir)
	}
	return nil
}

// syncDir makes the entries of dir (a rename, a removal) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// lock takes the shard's write lock: first this process's, honouring ctx
// while it waits, then the flock that excludes other processes. Every
// Create, Update, Touch and Delete holds it from reading the current file
// to renaming the new one, which makes them atomic across processes.
func (s *Store) lock(ctx context.Context, sh *shard) error {
	select {
	case sh.sem <- struct{}{}:
	default:
		select {
		case sh.sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := s.flock(ctx, sh); err != nil {
		<-sh.sem
		return err
	}
	return nil
}

func (s *Store) unlock(sh *shard) {
	if err := unlock(sh.lockFile); err != nil {
		// The lock is released when the file is closed; closing it here
		// makes sure a failed unlock cannot keep other processes out.
		sh.lockFile.Close()
		sh.lockFile = nil
	}
	<-sh.sem
}

// flock takes the flock of the shard's lock file, opening (and if needed
// creating) the file. The kernel offers no flock wait that a context can
// end, so it polls with a growing pause; a process holds the lock only for
// the length of one write.
func (s *Store) flock(ctx context.Context, sh *shard) error {
	pause := 20 * time.Microsecond
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		if sh.lockFile == nil {
			f, err := s.openLockFile(sh)
			if err != nil {
				return err
			}
			sh.lockFile = f
		}
		ok, err := tryLock(sh.lockFile)
		if err != nil {
			return err
		}
		if !ok {
			t := time.NewTimer(pause)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			}
			pause = min(2*pause, 5*time.Millisecond)
			continue
		}
		// Someone may have removed or replaced the lock file (or the whole
		// directory) since it was opened: a lock on a file nobody else can
		// open excludes nobody. Start over on the file now at the path.
		cur, err := isCurrent(sh.lockFile)
		if err != nil {
			unlock(sh.lockFile)
			return err
		}
		if cur {
			return nil
		}
		sh.lockFile.Close()
		sh.lockFile = nil
	}
}

func (s *Store) openLockFile(sh *shard) (*os.File, error) {
	path := filepath.Join(sh.dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, s.fileMode)
	if errors.Is(err, fs.ErrNotExist) {
		// The directory was removed under the store: recreate it.
		if err := os.MkdirAll(sh.dir, s.dirMode); err != nil {
			return nil, err
		}
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, s.fileMode)
	}
	return f, err
}

// reportOnce logs msg for path, once per path for the life of the store
// (up to a bound, so a directory full of junk cannot grow the set
// without limit).
func (s *Store) reportOnce(path, msg string, err error) {
	const maxReported = 10000
	s.skipMu.Lock()
	_, seen := s.reported[path]
	full := len(s.reported) >= maxReported
	if !seen && !full {
		s.reported[path] = struct{}{}
	}
	s.skipMu.Unlock()
	if !seen && !full {
		s.log.Warn(msg, "path", path, "err", err)
	}
}

// Close stops the file watcher and releases the lock files. It waits for
// calls in progress to end (a Cleanup stops at its next file). Close is
// idempotent; every other method called after it returns an error wrapping
// session.ErrClosed.
func (s *Store) Close() error {
	s.closing.Store(true)
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.cache.close()
	for i := range s.shards {
		if f := s.shards[i].lockFile; f != nil {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			s.shards[i].lockFile = nil
		}
	}
	if err != nil {
		return opErr("close", err)
	}
	return nil
}

// newWatcher is fsnotify.NewWatcher; the package's tests replace it to
// simulate a system where no watcher can start.
var newWatcher = fsnotify.NewWatcher
