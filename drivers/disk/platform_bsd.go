//go:build unix && !linux

package disk

import (
	"errors"
	"io"
	"runtime"
)

// exchangeFiles is Linux's renameat2(RENAME_EXCHANGE); elsewhere every
// write replaces the session file by rename.
func exchangeFiles(a, b string) error { return errNoExchange }

// startInotify: the read cache relies on inotify's rename cookies to tell
// this store's own writes from other processes' (see cache.go); without
// them the store runs uncached.
func startInotify(string, []string, func([]dirEvent), func(error)) (io.Closer, error) {
	return nil, errors.New("the read cache needs inotify, which " + runtime.GOOS + " lacks")
}
