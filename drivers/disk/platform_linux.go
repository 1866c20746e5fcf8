package disk

import (
	"errors"

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
