package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"unsafe"

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

// The inotify events the cache needs. Every writer of the store replaces
// or removes a session file by rename or unlink, which these report; the
// writes into temp and spare files (IN_MODIFY, IN_CREATE, IN_CLOSE_WRITE)
// are not watched: they would wake the watcher several times per write
// for files it ignores.
const (
	watchDirMask  = unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	watchSelfGone = unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_IGNORED | unix.IN_UNMOUNT
)

// inotifyWatcher watches the root and the shard directories with one
// inotify instance, read on its own goroutine through the runtime's poller
// (so that Close ends the read).
type inotifyWatcher struct {
	f    *os.File
	dirs map[int32]int // watch descriptor -> shard index, or -1 for the root
	done chan struct{}
}

// startInotify watches root and the shard directories dirs and hands
// every batch of events to handle, on one goroutine, until Close.
func startInotify(root string, dirs []string, handle func([]dirEvent), fail func(error)) (io.Closer, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify_init1: %w", err)
	}
	w := &inotifyWatcher{dirs: make(map[int32]int, len(dirs)+1), done: make(chan struct{})}
	add := func(dir string, idx int) error {
		wd, err := unix.InotifyAddWatch(fd, dir, watchDirMask)
		if err != nil {
			return pathErr("inotify_add_watch", dir, err)
		}
		w.dirs[int32(wd)] = idx
		return nil
	}
	if err := add(root, -1); err != nil {
		unix.Close(fd)
		return nil, err
	}
	for i, d := range dirs {
		if err := add(d, i); err != nil {
			unix.Close(fd)
			return nil, err
		}
	}
	// A non-blocking descriptor makes os.NewFile register it with the
	// poller: Read parks the goroutine, Close wakes it with an error.
	w.f = os.NewFile(uintptr(fd), "inotify")
	go w.run(handle, fail)
	return w, nil
}

func (w *inotifyWatcher) run(handle func([]dirEvent), fail func(error)) {
	defer close(w.done)
	buf := make([]byte, 64<<10)
	var batch []dirEvent
	for {
		n, err := w.f.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) {
				fail(err)
			}
			return
		}
		batch = batch[:0]
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			raw := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(raw.Len)]
			off += unix.SizeofInotifyEvent + int(raw.Len)
			name := string(nameBytes[:clen(nameBytes)])
			ev := dirEvent{name: name, cookie: raw.Cookie, shard: -2}
			if idx, ok := w.dirs[raw.Wd]; ok {
				ev.shard = idx
			}
			m := raw.Mask
			switch {
			case m&unix.IN_Q_OVERFLOW != 0:
				ev.op = evOverflow
			case m&watchSelfGone != 0:
				ev.op = evDirGone
			case m&unix.IN_MOVED_FROM != 0:
				ev.op = evMovedFrom
			case m&unix.IN_MOVED_TO != 0:
				ev.op = evMovedTo
			case m&unix.IN_DELETE != 0:
				ev.op = evDeleted
			default:
				continue
			}
			batch = append(batch, ev)
		}
		handle(batch)
	}
}

// clen is the length of the NUL-padded name inotify gives.
func clen(b []byte) int {
	for i, c := range b {
		if c == 0 {
			return i
		}
	}
	return len(b)
}

// stopped reports whether the watcher's goroutine has ended.
func (w *inotifyWatcher) stopped() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

func (w *inotifyWatcher) Close() error {
	err := w.f.Close()
	<-w.done
	return err
}
