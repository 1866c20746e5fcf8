//go:build unix && !linux

package disk

import "golang.org/x/sys/unix"

// checkWritable reports, with the system's own cause, whether this process
// may create and remove entries in dir.
func checkWritable(dir string) error {
	if err := unix.Faccessat(unix.AT_FDCWD, dir, unix.W_OK|unix.X_OK, unix.AT_EACCESS); err != nil {
		return pathErr("access", dir, err)
	}
	return nil
}

// exchangeFiles is Linux's renameat2(RENAME_EXCHANGE); elsewhere every
// write replaces the session file by rename.
func exchangeFiles(a, b string) error { return errNoExchange }
