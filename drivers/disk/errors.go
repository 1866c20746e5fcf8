package disk

import (
	"errors"
	"fmt"
	"io/fs"

	session "github.com/websession/websession/core"
)

// ErrCorrupt marks a file under the store's root that holds no valid
// session: truncated, altered, or written by something else. Load, Update
// and Touch report such a file with an error that wraps both ErrCorrupt and
// session.ErrNotFound, so the manager treats the session as absent (the
// browser gets a fresh session, never a permanent error), while
// errors.Is(err, ErrCorrupt) still tells the two cases apart. Create
// refuses to overwrite such a file (session.ErrExists), Delete removes it,
// and Cleanup leaves it in place and reports it.
var ErrCorrupt = errors.New("disk: corrupt session file")

// errNoExchange: the file system cannot exchange two names atomically.
var errNoExchange = errors.New("RENAME_EXCHANGE not supported")

// opErr is every error the store returns: "disk: <op>: <cause>", wrapping
// the cause, so that errors.Is reaches the session sentinels and the
// system's errors (syscall.ENOSPC, fs.ErrPermission).
func opErr(op string, err error) error {
	return fmt.Errorf("disk: %s: %w", op, err)
}

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
}

// tooLarge is the cause for data beyond maxDataSize.
func tooLarge(n int) error {
	return fmt.Errorf("%d bytes of data, at most %d fit: %w", n, maxDataSize, session.ErrTooLarge)
}

// readErr turns an error reading or decoding the file at path into what
// the Store contract asks for.
func (s *Store) readErr(op, path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return opErr(op, session.ErrNotFound)
	case errors.Is(err, ErrCorrupt):
		s.reportOnce(path, "disk: treating a corrupt session file as absent", err)
		return opErr(op, fmt.Errorf("%s: %w (%w)", path, err, session.ErrNotFound))
	default:
		return opErr(op, err)
	}
}
