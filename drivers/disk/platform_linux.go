package disk

import (
	"errors"
	"io/fs"
	"strconv"

	"golang.org/x/sys/unix"
)

// exchangeFiles swaps the files at a and b atomically (renameat2 with
// RENAME_EXCHANGE, Linux 3.15; ext4, XFS, Btrfs, tmpfs and others). It
// returns errNoExchange where the file system does not support it.
func exchangeFiles(a, b string) error {
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EOPNOTSUPP):
		return errNoExchange
	}
	return &errLink{"exchange", a, b, err}
}

// checkWritable reports, with the system's own cause, whether this process
// may create and remove entries in dir: permission bits and ACLs, but also
// what binds root (a read-only mount, an immutable directory). It calls
// faccessat2 itself: x/sys's Faccessat takes an EPERM from it (which an
// immutable directory gives) for a sandbox refusing the call, and falls
// back to comparing permission bits, which root always passes.
func checkWritable(dir string) error {
	err := unix.Faccessat2(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS)
	if errors.Is(err, unix.ENOSYS) { // Linux before 5.8: the real user's access
		err = unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, 0)
	}
	if err != nil {
		return pathErr("access", dir, err)
	}
	return nil
}

// createLinked makes buf the content of a new file at path, atomically:
// it fills an unnamed file in dir (O_TMPFILE) and links it at path, which
// fails if path exists. Nothing is left behind by a crash, and no name is
// made and renamed: one directory change instead of two. It returns
// errNoTmpfile where the file system (or a missing /proc) does not allow
// it.
func createLinked(dir, path string, buf []byte, mode fs.FileMode) error {
	fd, err := sysOpen(dir, unix.O_RDWR|unix.O_TMPFILE, mode)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			return errNoTmpfile
		}
		return err
	}
	defer closeFd(fd)
	if err := writeFile(fd, path, buf, int64(len(buf))); err != nil {
		return err
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if _, serr := lstatPath("/proc/self/fd"); serr != nil {
			return errNoTmpfile
		}
	}
	if err != nil {
		return &errLink{"link", "(unnamed)", path, err}
	}
	return nil
}
