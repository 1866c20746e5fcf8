//go:build unix

package disk

import (
	"errors"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// oNoFollow makes opening a session file fail on a symbolic link: nothing
// under the root is ever a link the store made, so one is never followed.
const oNoFollow = syscall.O_NOFOLLOW

func platformSupported() error { return nil }

// tryLock takes an exclusive flock on f without blocking. It reports false
// if another open file description holds the lock.
func tryLock(f *os.File) (bool, error) {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EWOULDBLOCK):
			return false, nil
		default:
			return false, &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
}

func unlock(f *os.File) error {
	if err := unix.Flock(int(f.Fd()), unix.LOCK_UN); err != nil {
		return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
	}
	return nil
}

// isCurrent reports whether the open file f is still the file at its path.
// A lock taken on a file that was deleted or replaced meanwhile locks
// nothing another process can see.
func isCurrent(f *os.File) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		return false, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	if err := unix.Stat(f.Name(), &b); err != nil {
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		return false, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}
