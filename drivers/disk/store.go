package disk

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	session "github.com/websession/websession/core"
)

// numShards is the number of subdirectories sessions are spread over. With
// a million sessions each holds about 4000 files, which every common file
// system lists and searches quickly.
const numShards = 256

// Names under the root that are not session files. Session file names are
// lower-case base32 (a-z, 2-7), so none can start with a dot.
const (
	tempPrefix  = ".tmp-"   // temp files of writers (none today; left by older versions)
	sparePrefix = ".spare-" // + store token: a store's spare file in a shard
	storePrefix = ".store-" // + store token, in the root: held locked while the store is open
	lockName    = ".lock"
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

	// token names this store's spare files and its .store file; it is
	// random, so no other store, in this process or another, shares it.
	token     string
	spareName string
	storeFd   int // the .store file, flocked while the store is open

	// noExchange is set when the file system refuses RENAME_EXCHANGE:
	// writes then rename the spare over the session file. noInPlace is
	// set when the file system refuses to write a file with no permission
	// bits through the descriptor that created it (some network file
	// systems check permissions on every write): Create then goes through
	// the spare.
	noExchange, noInPlace atomic.Bool
	// madeMode is the mode the files this store creates get (fileMode
	// less the process's umask), read off its .store file. Create writes
	// new session files in place (createInPlace) only if it is not 0,
	// which marks a file still being written.
	madeMode fs.FileMode

	shards [numShards]shard
	// owners are the shards of the owner index (see owner.go), made when
	// first written.
	owners [numShards]shard

	// life is held shared by every method for its whole run and
	// exclusively by Close, so Close never pulls a lock file or the cache
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
	// testHookInPlaceWrite, if set, replaces the write of a file created
	// in place (createInPlace).
	testHookInPlaceWrite func(fd int, path string, buf []byte) error
	// testHookSweepEntry, if set, runs in Sweep before it reads the header
	// of the session file at path.
	testHookSweepEntry func(path string)
}

// shard is one subdirectory and its write lock.
type shard struct {
	dir, lockPath, spare string
	// index: a shard of the owner index, whose files are always made
	// through the spare (a Sweep there looks only for spares).
	index bool
	// sem serialises this process's writers to the shard; the flock on
	// lockFd then excludes other processes (and other Store values).
	// flock alone would not do: every goroutine here shares one open file
	// description, and flock locks belong to open file descriptions.
	sem chan struct{}
	// Guarded by sem:
	lockFd  int  // -1 until first use
	spareOK bool // the spare file exists
}

var _ session.Store = (*Store)(nil)
var _ io.Closer = (*Store)(nil)

// New opens the store rooted at dir, creating the directory and its
// subdirectories if missing, and maps the read cache's counter table.
// It refuses, with the system's own error, a directory this process cannot
// use: not a directory, not writable (permissions, a read-only mount, an
// immutable directory), or with a subdirectory it cannot write. If only the
// counter table cannot be mapped, the store logs it once and works without
// the cache.
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
	if err := checkDir(root); err != nil {
		return nil, opErr("new", err)
	}
	var tok [8]byte
	rand.Read(tok[:])
	s := &Store{
		root:     root,
		fileMode: opt.fileMode,
		dirMode:  opt.dirMode,
		durable:  opt.durable,
		log:      opt.logger,
		token:    hex.EncodeToString(tok[:]),
		storeFd:  -1,
		reported: make(map[string]struct{}),
	}
	s.spareName = sparePrefix + s.token
	for i := range s.shards {
		sh := &s.shards[i]
		sh.dir = filepath.Join(root, shardName(i))
		sh.lockPath = filepath.Join(sh.dir, lockName)
		sh.spare = filepath.Join(sh.dir, s.spareName)
		sh.sem = make(chan struct{}, 1)
		sh.lockFd = -1
		if err := os.Mkdir(sh.dir, opt.dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, opErr("new", err)
		}
		if err := checkDir(sh.dir); err != nil {
			return nil, opErr("new", err)
		}
		sh = &s.owners[i]
		sh.index = true
		sh.dir = filepath.Join(root, ownersDir, shardName(i))
		sh.lockPath = filepath.Join(sh.dir, lockName)
		sh.spare = filepath.Join(sh.dir, s.spareName)
		sh.sem = make(chan struct{}, 1)
		sh.lockFd = -1
	}
	// The .store file marks this store as alive (see Sweep), and creating
	// it proves the root writable beyond what access(2) says.
	if err := s.openStoreFile(); err != nil {
		return nil, opErr("new", err)
	}
	if opt.durable {
		if err := syncDir(root); err != nil {
			s.closeStoreFile()
			return nil, opErr("new", err)
		}
	}
	s.cache.init(s, opt.cacheSize)
	return s, nil
}

// checkDir fails unless dir is a directory this process may write.
func checkDir(dir string) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return checkWritable(dir)
}

// openStoreFile creates and locks the store's .store file. A Sweep in
// another process removes .store files nobody holds locked; if one removed
// this file between its creation and its locking, it is made again.
func (s *Store) openStoreFile() error {
	path := filepath.Join(s.root, storePrefix+s.token)
	for {
		fd, err := createExcl(path, s.fileMode)
		if err != nil {
			return err
		}
		if _, err := tryLock(fd, path, true); err != nil {
			closeFd(fd)
			return err
		}
		cur, err := isCurrent(fd, path)
		if err != nil {
			closeFd(fd)
			return err
		}
		if cur {
			fi, err := statFd(fd, path)
			if err != nil {
				closeFd(fd)
				return err
			}
			s.storeFd, s.madeMode = fd, fi.perm
			return nil
		}
		closeFd(fd)
	}
}

func (s *Store) closeStoreFile() error {
	if s.storeFd < 0 {
		return nil
	}
	err := removeFile(filepath.Join(s.root, storePrefix+s.token))
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	closeFd(s.storeFd)
	s.storeFd = -1
	return err
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
	if len(name) == 0 || len(name) > fileNames.EncodedLen(session.MaxKeyLen) || name[0] == '.' {
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

// Load implements session.Store. It takes no shard lock (see readStable).
func (s *Store) Load(ctx context.Context, key string) (session.Record, error) {
	if err := s.enterKey(ctx, "load", key); err != nil {
		return session.Record{}, err
	}
	defer s.leave()
	return s.load(ctx, "load", key)
}

// load is Load, for a valid key, within enter and leave.
func (s *Store) load(ctx context.Context, op, key string) (session.Record, error) {
	i := shardOf(key)
	rec, gen, ok := s.cache.get(i, key)
	if ok {
		return rec, nil
	}
	path := s.pathIn(i, key)
	buf, err := s.readStable(ctx, path, maxFileSize)
	if err != nil {
		return session.Record{}, s.readErr(op, path, err)
	}
	rec, err = decode(buf)
	if err != nil {
		return session.Record{}, s.readErr(op, path, err)
	}
	if s.testHookLoadRead != nil {
		s.testHookLoadRead()
	}
	s.cache.put(i, key, gen, rec)
	return rec, nil
}

// Reading and writing files.
//
// A write never changes a session file in place: it fills the writing
// store's spare file in the shard (.spare-<token>) and then swaps the two
// names with one atomic renameat2(RENAME_EXCHANGE), so the spare becomes
// the session file and the replaced session file becomes the spare, to be
// overwritten by the next write in that shard. Files are reused rather than
// made and deleted: creating and freeing an inode per write is what costs
// most on common file systems (an ext4 without a journal scans its inode
// table for recently freed inodes on every creation; with the discard mount
// option every freed block is trimmed). Where RENAME_EXCHANGE is missing
// (not Linux, or a file system without it), the spare is renamed over the
// session file and a new spare made for the next write.
//
// Reusing files means a file may be rewritten while a reader that opened it
// as a session file still holds it. Readers take no shard lock, so they
// protect themselves with a shared flock on the file they opened, and
// writers take an exclusive one on the spare they fill:
//
//  1. A writer rewrites a file only while it holds the shard's lock and an
//     exclusive flock on it, and only while the file is at a spare name.
//     It releases that flock before moving the file to a session name,
//     complete.
//  2. A reader opens the session file, takes a shared flock on it (retrying
//     from the open if a writer holds it), then checks that the file it
//     holds is still the one at the session name (device and inode of its
//     open descriptor against lstat of the name: the file cannot be freed
//     and its inode reused while the reader holds it open). If so, by 1 the
//     file is complete and no writer can change it until the reader lets
//     go: what it reads is the session as it was at that check.
//
// A writer that finds its spare held by a reader leaves the file to that
// reader and makes a new spare.

// readStable returns the content of the file at path (at most max bytes),
// for a reader without the shard's lock. It gives up when ctx ends.
func (s *Store) readStable(ctx context.Context, path string, max int) ([]byte, error) {
	for try := 0; ; try++ {
		if try > 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if try > 3 {
				time.Sleep(time.Duration(min(try, 100)) * 10 * time.Microsecond)
			} else {
				runtime.Gosched()
			}
		}
		fd, err := s.openSession(path)
		if err != nil {
			return nil, err
		}
		ok, err := tryLock(fd, path, false)
		if err != nil || !ok {
			closeFd(fd)
			if err != nil {
				return nil, err
			}
			continue // being rewritten: it is no longer at path
		}
		buf, err := s.readOpen(fd, path, max, true)
		closeFd(fd) // releases the flock
		if errors.Is(err, errMoved) {
			continue
		}
		return buf, err
	}
}

// readLocked returns the content of the file at path (at most max bytes),
// for a writer holding the shard's lock: no other writer can change any
// file of the shard meanwhile.
func (s *Store) readLocked(path string, max int) ([]byte, error) {
	fd, err := s.openSession(path)
	if err != nil {
		return nil, err
	}
	defer closeFd(fd)
	return s.readOpen(fd, path, max, false)
}

// errMoved: the file a reader opened is no longer at its path.
var errMoved = errors.New("moved")

// openSession opens the session file at path, refusing symbolic links
// (as corrupt: nothing under the root is a link the store made).
func (s *Store) openSession(path string) (int, error) {
	fd, err := openRead(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// ELOOP from O_NOFOLLOW: a symbolic link where a session should be.
		// EACCES: a Create in progress (unless this process runs as
		// root, which opens it anyway: readOpen then tells).
		if fi, lerr := lstatPath(path); lerr == nil {
			switch {
			case !fi.regular:
				return -1, corrupt("%s is not a regular file", path)
			case fi.unfinished():
				return -1, unfinished(path)
			}
		}
	}
	return fd, err
}

// errUnfinished is the cause for a session file with no permission bits:
// still being created, or left by a Create that crashed. There is no
// session there yet.
var errUnfinished = fmt.Errorf("%w (a Create in progress, or one a crash interrupted)", fs.ErrNotExist)

func unfinished(path string) error { return pathErr("open", path, errUnfinished) }

// readOpen reads the file open as fd, up to max bytes. With check, it
// first makes sure the file is still at path.
func (s *Store) readOpen(fd int, path string, max int, check bool) ([]byte, error) {
	fi, err := statFd(fd, path)
	if err != nil {
		return nil, err
	}
	if check {
		cur, err := lstatPath(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if err != nil || !cur.sameFile(fi) {
			return nil, errMoved
		}
	}
	if !fi.regular {
		return nil, corrupt("%s is not a regular file", path)
	}
	if fi.unfinished() {
		return nil, unfinished(path)
	}
	if max >= maxFileSize {
		s.fileReads.Add(1)
	}
	buf := make([]byte, min(fi.size, int64(max)))
	got, err := readFull(fd, path, buf)
	if err != nil {
		return nil, err
	}
	return buf[:got], nil
}

// write makes buf the content of the session file at path, atomically,
// through the shard's spare (see above); replace says whether a file is
// at path. A new file is, where durability is off, written in place
// instead (createInPlace), and then write fails with session.ErrExists if
// path exists (session files only, not the owner index's). The caller
// holds the shard's lock. On error the session
// file is intact (or, if only the final directory fsync failed, replaced).
func (s *Store) write(sh *shard, path string, buf []byte, replace bool) error {
	if !replace && !sh.index && s.inPlace() {
		err := s.createInPlace(sh, path, buf)
		if !errors.Is(err, errInPlaceRefused) {
			return err
		}
		// The name was free (O_EXCL), the unfinished file is removed and
		// this store holds the shard's lock: the spare may take the name.
	}
	fd, fresh, err := s.takeSpare(sh)
	if err != nil {
		return err
	}
	size := int64(-1)
	if fresh {
		size = int64(len(buf))
	}
	err = writeFile(fd, sh.spare, buf, size)
	if err == nil && s.durable {
		err = syncFd(fd, sh.spare)
	}
	if cerr := closeFd(fd); err == nil && cerr != nil {
		err = pathErr("close", sh.spare, cerr)
	}
	if err != nil {
		// The spare holds a partial write: it is never read as a
		// session, and the next write overwrites it.
		return err
	}
	exchanged := false
	if replace && !s.noExchange.Load() {
		switch err := exchangeFiles(sh.spare, path); {
		case err == nil:
			exchanged = true
		case errors.Is(err, errNoExchange):
			s.noExchange.Store(true)
		default:
			return err
		}
	}
	if !exchanged {
		if err := renameFile(sh.spare, path); err != nil {
			return err
		}
		sh.spareOK = false // it is the session file now
	}
	if s.durable {
		return syncDir(sh.dir)
	}
	return nil
}

// inPlace reports whether Create writes new session files in place.
// Not when durable: in-place creation would need a third fsync, for the
// mode change after the data, to survive a power failure as the spare's
// rename does.
func (s *Store) inPlace() bool { return !s.durable && s.madeMode != 0 && !s.noInPlace.Load() }

// createInPlace makes buf the content of a new session file at path,
// failing with session.ErrExists if a file is there. It creates the file
// where it belongs, with no permission bits, writes it, and only then
// gives it its mode: a file with no permission bits is not a session yet
// (readers treat it as missing), so a Create that a crash interrupts
// leaves such a file, never a torn session, and the next write of that
// key or Cleanup removes it. This costs one inode creation and one
// directory entry, what creating any file costs; the spare's rename, or
// an unnamed file's link, would add a second change of the directory.
// The caller holds the shard's lock, as every creator does, so a file with
// no permission bits found here is left by a crash, not being written.
func (s *Store) createInPlace(sh *shard, path string, buf []byte) error {
	fd, err := createUnfinished(path)
	for try := 0; err != nil && try < 2; try++ {
		switch {
		case errors.Is(err, fs.ErrExist):
			fi, lerr := lstatPath(path)
			if lerr != nil && !errors.Is(lerr, fs.ErrNotExist) {
				return lerr
			}
			if lerr == nil && !fi.unfinished() {
				return session.ErrExists
			}
			if lerr == nil {
				if err := removeFile(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return err
				}
			}
		case errors.Is(err, fs.ErrNotExist):
			// The directory was removed under the store: make it again.
			if err := os.MkdirAll(sh.dir, s.dirMode); err != nil {
				return err
			}
		default:
			return err
		}
		fd, err = createUnfinished(path)
	}
	if err != nil {
		return err
	}
	if s.testHookInPlaceWrite != nil {
		err = s.testHookInPlaceWrite(fd, path, buf)
	} else {
		err = writeFile(fd, path, buf, int64(len(buf)))
	}
	if err == nil {
		err = chmodFd(fd, path, s.madeMode)
	}
	if cerr := closeFd(fd); err == nil && cerr != nil {
		err = pathErr("close", path, cerr)
	}
	if err != nil {
		// Nothing half-written stays behind: readers never saw it as a
		// session (it had no permission bits), and no one else writes
		// it while this store holds the shard's lock.
		if rerr := removeFile(path); rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
			s.reportOnce(path, "disk: cannot remove a session file whose creation failed", rerr)
			return err
		}
		if errors.Is(err, fs.ErrPermission) && !s.noInPlace.Swap(true) {
			s.log.Warn("disk: the file system refuses to write a new file before it has permission bits; creating sessions through the spare file from now on",
				"dir", s.root, "err", err)
		}
		if s.noInPlace.Load() {
			return errInPlaceRefused
		}
		return err
	}
	return nil
}

// errInPlaceRefused: createInPlace found the file system refusing it, and
// left nothing behind; the caller creates the file through the spare.
var errInPlaceRefused = errors.New("in-place creation refused")

// takeSpare opens the store's spare file in the shard for rewriting,
// holding an exclusive flock on it, or makes a new one (fresh: empty).
func (s *Store) takeSpare(sh *shard) (fd int, fresh bool, err error) {
	if sh.spareOK {
		fd, err := openWrite(sh.spare)
		switch {
		case err == nil:
			ok, err := tryLock(fd, sh.spare, true)
			if ok {
				return fd, false, nil
			}
			closeFd(fd)
			if err != nil {
				return -1, false, err
			}
			// A reader holds this file, which was a session file when
			// it opened it: leave it to the reader.
			if err := removeFile(sh.spare); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return -1, false, err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return -1, false, err
		}
		sh.spareOK = false
	}
	fd, err = createExcl(sh.spare, s.fileMode)
	if errors.Is(err, fs.ErrExist) {
		// Left by a write that failed before its rename.
		if err := removeFile(sh.spare); err != nil {
			return -1, false, err
		}
		fd, err = createExcl(sh.spare, s.fileMode)
	}
	if errors.Is(err, fs.ErrNotExist) {
		// The directory was removed under the store: make it again.
		if err := os.MkdirAll(sh.dir, s.dirMode); err != nil {
			return -1, false, err
		}
		fd, err = createExcl(sh.spare, s.fileMode)
	}
	if err != nil {
		return -1, false, err
	}
	sh.spareOK = true
	return fd, true, nil
}

// Create implements session.Store. A record with an Owner is added to
// that owner's index first (see owner.go).
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
	// In place, the file's creation itself fails if one exists; only an
	// owner index entry, added first, needs to know before.
	if rec.Owner != "" || !s.inPlace() {
		switch fi, err := lstatPath(path); {
		case err == nil && !fi.unfinished():
			return opErr("create", session.ErrExists)
		case err != nil && !errors.Is(err, fs.ErrNotExist):
			return opErr("create", err)
		}
	}
	if rec.Owner != "" {
		if err := s.indexAdd(ctx, rec.Owner, key); err != nil {
			return opErr("create", err)
		}
	}
	return s.commit("create", i, key, path, buf, rec, false)
}

// Update implements session.Store. It replaces the Owner with Data and
// ATime, moving the key between owner indexes: added to the new owner's
// before the write, removed from the old owner's after it.
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
	b, err := s.readLocked(path, maxHeaderSize)
	if err != nil {
		return s.readErr("update", path, err)
	}
	h, err := decodeHeader(b)
	if err != nil {
		return s.readErr("update", path, err)
	}
	if h.version != rec.Version {
		return opErr("update", session.ErrConflict)
	}
	rec = session.Record{Data: rec.Data, ATime: rec.ATime, Created: h.created, Version: h.version + 1, Owner: rec.Owner}
	buf, err := encode(rec)
	if err != nil {
		return opErr("update", err)
	}
	if rec.Owner != "" && rec.Owner != h.owner {
		if err := s.indexAdd(ctx, rec.Owner, key); err != nil {
			return opErr("update", err)
		}
	}
	if err := s.commit("update", i, key, path, buf, rec, true); err != nil {
		return err
	}
	if h.owner != "" && h.owner != rec.Owner {
		s.indexRemoveAfter(ctx, h.owner, key)
	}
	return nil
}

// Touch implements session.Store. It rewrites the whole file, data and
// owner included: only a rename replaces a file atomically.
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
	buf, err := s.readLocked(path, maxFileSize)
	var rec session.Record
	if err == nil {
		rec, err = decode(buf)
	}
	if err != nil {
		return s.readErr("touch", path, err)
	}
	rec.ATime = atime
	if buf, err = encode(rec); err != nil {
		return opErr("touch", err)
	}
	return s.commit("touch", i, key, path, buf, rec, true)
}

// commit ends Create, Update and Touch: it writes buf, the encoding of
// rec, as key's file, and caches rec if it replaced a file (see cache.go).
// A new session is cached by its first Load instead: adding an entry (a
// copy of the data, a map insertion) would make a Create slower with the
// cache than without it, for a record the next request may never read
// here. On error it evicts key, since a failed directory fsync comes
// after the rename.
func (s *Store) commit(op string, i int, key, path string, buf []byte, rec session.Record, replace bool) error {
	ctr := s.cache.begin(i, key)
	err := s.write(&s.shards[i], path, buf, replace)
	v := s.cache.end(ctr)
	if err != nil {
		s.cache.evict(i, key)
		return opErr(op, err)
	}
	if replace {
		s.cache.store(i, key, v, rec)
	}
	return nil
}

// Delete implements session.Store. A session with an Owner leaves that
// owner's index after its file is gone.
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
	owner := s.ownerOf(path)
	ctr := s.cache.begin(i, key)
	err := removeFile(path)
	s.cache.end(ctr)
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
	if owner != "" {
		s.indexRemoveAfter(ctx, owner, key)
	}
	return nil
}

// ownerOf returns the Owner of the session file at path, or "" if it has
// none or cannot be read; the caller holds the shard's lock.
func (s *Store) ownerOf(path string) string {
	b, err := s.readLocked(path, maxHeaderSize)
	if err != nil {
		return ""
	}
	h, err := decodeHeader(b)
	if err != nil {
		return ""
	}
	return h.owner
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
	if err := unlockFd(sh.lockFd, sh.lockPath); err != nil {
		// The lock is released when the file is closed; closing it here
		// makes sure a failed unlock cannot keep other processes out.
		closeFd(sh.lockFd)
		sh.lockFd = -1
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
		if sh.lockFd < 0 {
			fd, err := s.openLockFile(sh)
			if err != nil {
				return err
			}
			sh.lockFd = fd
		}
		ok, err := tryLock(sh.lockFd, sh.lockPath, true)
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
		// Removing a file, or renaming another over it, drops its link
		// count to 0, which fstat tells without walking the path.
		fi, err := statFd(sh.lockFd, sh.lockPath)
		if err != nil {
			unlockFd(sh.lockFd, sh.lockPath)
			return err
		}
		if fi.linked {
			return nil
		}
		closeFd(sh.lockFd)
		sh.lockFd = -1
		sh.spareOK = false // the directory may be new
	}
}

// isCurrent reports whether the open file fd is still the file at path.
func isCurrent(fd int, path string) (bool, error) {
	a, err := statFd(fd, path)
	if err != nil {
		return false, err
	}
	b, err := lstatPath(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return a.sameFile(b), nil
}

func (s *Store) openLockFile(sh *shard) (int, error) {
	fd, err := openLock(sh.lockPath, s.fileMode)
	if errors.Is(err, fs.ErrNotExist) {
		// The directory was removed under the store: recreate it.
		if err := os.MkdirAll(sh.dir, s.dirMode); err != nil {
			return -1, err
		}
		fd, err = openLock(sh.lockPath, s.fileMode)
	}
	return fd, err
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

// allShards returns the session and the owner index shards.
func (s *Store) allShards() []*shard {
	all := make([]*shard, 0, 2*numShards)
	for i := range s.shards {
		all = append(all, &s.shards[i])
	}
	for i := range s.owners {
		all = append(all, &s.owners[i])
	}
	return all
}

// Close unmaps the cache's table, removes the store's spare files and
// releases its lock files. It waits for calls in progress to end (a
// Cleanup stops at its next file). Close is idempotent; every other method
// called after it returns an error wrapping session.ErrClosed.
func (s *Store) Close() error {
	s.closing.Store(true)
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	err := s.cache.close()
	for _, sh := range s.allShards() {
		if sh.spareOK {
			if rerr := removeFile(sh.spare); err == nil && rerr != nil && !errors.Is(rerr, fs.ErrNotExist) {
				err = rerr
			}
			sh.spareOK = false
		}
		if sh.lockFd >= 0 {
			if cerr := closeFd(sh.lockFd); err == nil && cerr != nil {
				err = pathErr("close", sh.lockPath, cerr)
			}
			sh.lockFd = -1
		}
	}
	if cerr := s.closeStoreFile(); err == nil {
		err = cerr
	}
	if err != nil {
		return opErr("close", err)
	}
	return nil
}
