//go:build unix && !linux

package disk

import (
	"errors"
	"io"
	"runtime"

	"golang.org/x/sys/unix"
)

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

// startInotify: the read cache relies on inotify's rename cookies to tell
// this store's own writes from other processes' (see cache.go); without
// them the store runs uncached.
func startInotify(string, []string, func([]dirEvent), func(error)) (io.Closer, error) {
	return nil, errors.New("the read cache needs inotify, which " + runtime.GOOS + " lacks")
}
