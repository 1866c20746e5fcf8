//go:build unix

package disk

import (
	"errors"
	"io/fs"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The store's file system layer: raw system calls on file descriptors.
// os.File would add, per open, a round of fcntl and epoll_ctl calls (it
// tries to register every file with the network poller) that a session
// read or write does not need.

func platformSupported() error { return nil }

// fileInfo is what the store needs of fstat: identity, size, type and
// permission bits.
type fileInfo struct {
	dev, ino uint64
	size     int64
	regular  bool
	perm     fs.FileMode
	linked   bool // has a name: its link count is not 0
}

func (a fileInfo) sameFile(b fileInfo) bool { return a.dev == b.dev && a.ino == b.ino }

// unfinished reports a session file a Create has not finished: a regular
// file with no permission bits (see Store.createInPlace).
func (a fileInfo) unfinished() bool { return a.regular && a.perm == 0 }

func pathErr(op, path string, err error) error {
	return &fs.PathError{Op: op, Path: path, Err: err}
}

func infoOf(st *unix.Stat_t) fileInfo {
	return fileInfo{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		regular: st.Mode&unix.S_IFMT == unix.S_IFREG, perm: fs.FileMode(st.Mode & 0o777), linked: st.Nlink > 0}
}

// retryEINTR runs f until it does not fail with EINTR.
func retryEINTR(f func() error) error {
	for {
		if err := f(); !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

func sysOpen(path string, flags int, mode fs.FileMode) (int, error) {
	var fd int
	err := retryEINTR(func() (err error) {
		fd, err = unix.Open(path, flags|unix.O_CLOEXEC, uint32(mode.Perm()))
		return err
	})
	if err != nil {
		return -1, pathErr("open", path, err)
	}
	return fd, nil
}

// openRead opens a session file for reading. It never follows a symbolic
// link: nothing under the root is a link the store made.
func openRead(path string) (int, error) { return sysOpen(path, unix.O_RDONLY|unix.O_NOFOLLOW, 0) }

// openWrite opens an existing spare file for rewriting.
func openWrite(path string) (int, error) { return sysOpen(path, unix.O_RDWR|unix.O_NOFOLLOW, 0) }

// createExcl creates a new file, failing if path exists.
func createExcl(path string, mode fs.FileMode) (int, error) {
	return sysOpen(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, mode)
}

// createUnfinished creates a new file at path with no permissions at all,
// failing if path exists: the mark of a session file still being written
// (see Store.createInPlace). The creating open may write it all the same.
func createUnfinished(path string) (int, error) {
	return sysOpen(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW, 0)
}

// chmodFd sets the permission bits of the open file fd.
func chmodFd(fd int, path string, mode fs.FileMode) error {
	if err := retryEINTR(func() error { return unix.Fchmod(fd, uint32(mode.Perm())) }); err != nil {
		return pathErr("chmod", path, err)
	}
	return nil
}

// openLock opens (creating if needed) a lock file.
func openLock(path string, mode fs.FileMode) (int, error) {
	return sysOpen(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW, mode)
}

func closeFd(fd int) error { return unix.Close(fd) }

func statFd(fd int, path string) (fileInfo, error) {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return fileInfo{}, pathErr("fstat", path, err)
	}
	return infoOf(&st), nil
}

func lstatPath(path string) (fileInfo, error) {
	var st unix.Stat_t
	if err := retryEINTR(func() error { return unix.Lstat(path, &st) }); err != nil {
		return fileInfo{}, pathErr("lstat", path, err)
	}
	return infoOf(&st), nil
}

// readFull reads len(buf) bytes at offset 0 and returns how many it got:
// fewer only at the end of the file.
func readFull(fd int, path string, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		var m int
		err := retryEINTR(func() (err error) { m, err = unix.Pread(fd, buf[n:], int64(n)); return err })
		if err != nil {
			return n, pathErr("read", path, err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// writeFile makes the open file fd hold exactly buf.
func writeFile(fd int, path string, buf []byte, size int64) error {
	n := 0
	for n < len(buf) {
		var m int
		err := retryEINTR(func() (err error) { m, err = unix.Pwrite(fd, buf[n:], int64(n)); return err })
		if err != nil {
			return pathErr("write", path, err)
		}
		n += m
	}
	if size != int64(len(buf)) {
		if err := retryEINTR(func() error { return unix.Ftruncate(fd, int64(len(buf))) }); err != nil {
			return pathErr("truncate", path, err)
		}
	}
	return nil
}

func syncFd(fd int, path string) error {
	if err := retryEINTR(func() error { return unix.Fsync(fd) }); err != nil {
		return pathErr("fsync", path, err)
	}
	return nil
}

func renameFile(from, to string) error {
	if err := unix.Rename(from, to); err != nil {
		return &errLink{"rename", from, to, err}
	}
	return nil
}

func removeFile(path string) error {
	if err := unix.Unlink(path); err != nil {
		return pathErr("remove", path, err)
	}
	return nil
}

// errLink is os.LinkError without importing os for it.
type errLink struct {
	op, from, to string
	err          error
}

func (e *errLink) Error() string { return e.op + " " + e.from + " " + e.to + ": " + e.err.Error() }
func (e *errLink) Unwrap() error { return e.err }

// tryLock takes a flock on fd without blocking, exclusive or shared. It
// reports false if a conflicting lock is held through another open file
// description.
func tryLock(fd int, path string, exclusive bool) (bool, error) {
	how := unix.LOCK_SH | unix.LOCK_NB
	if exclusive {
		how = unix.LOCK_EX | unix.LOCK_NB
	}
	err := retryEINTR(func() error { return unix.Flock(fd, how) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		return false, nil
	default:
		return false, pathErr("flock", path, err)
	}
}

func unlockFd(fd int, path string) error {
	if err := unix.Flock(fd, unix.LOCK_UN); err != nil {
		return pathErr("flock", path, err)
	}
	return nil
}

// syncDir makes the entries of dir (a rename, a removal) durable.
func syncDir(dir string) error {
	fd, err := sysOpen(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	err = syncFd(fd, dir)
	if cerr := closeFd(fd); err == nil && cerr != nil {
		err = pathErr("close", dir, cerr)
	}
	return err
}

// mapCounterTable maps the cache's counter table at path, shared with
// every process mapping it, creating or growing the file as needed.
func mapCounterTable(path string, mode fs.FileMode) (*counterTable, error) {
	fd, err := sysOpen(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW, mode)
	if err != nil {
		return nil, err
	}
	defer closeFd(fd)
	fi, err := statFd(fd, path)
	if err != nil {
		return nil, err
	}
	if !fi.regular {
		return nil, pathErr("open", path, errors.New("not a regular file"))
	}
	if fi.size < tableBytes {
		// Growing fills with zeros; two processes doing it at once agree.
		if err := unix.Ftruncate(fd, tableBytes); err != nil {
			return nil, pathErr("truncate", path, err)
		}
	}
	mem, err := unix.Mmap(fd, 0, tableBytes, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, pathErr("mmap", path, err)
	}
	return &counterTable{mem: mem, slots: (*[tableSlots]atomic.Uint64)(unsafe.Pointer(&mem[0])), path: path, id: fi}, nil
}

func (t *counterTable) unmap() error { return unix.Munmap(t.mem) }
