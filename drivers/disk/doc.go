// Package disk is a session.Store that keeps one file per session under a
// directory: web.py's DiskStore, made durable, safe to share between
// processes, and fast to read again.
//
// # Layout
//
// Under the root are 256 subdirectories, 00 to ff; a session lives in the
// one chosen by a hash of its key, so a million sessions do not sit in one
// directory. Its file name is the key in lower-case base32, which keeps
// keys that differ only in case apart on case-insensitive file systems.
// Every key is checked with session.ValidKey before a path is built from
// it. Files are created with mode 0600 and directories with 0700 (see
// WithPermissions). Each subdirectory also holds a .lock file, and may
// briefly hold .tmp-* files while a write is in progress.
//
// # File format
//
// A session file holds a versioned header (format version, ATime, Created,
// Version, data length, all exact: Unix seconds and nanoseconds), the data,
// and CRC-32C checksums of the header and of the whole file. The store
// never consults file times, which mount options such as relatime or
// noatime make unreliable, and never reads a clock. A truncated, altered or
// foreign file is detected: Load reports it with an error wrapping both
// ErrCorrupt and session.ErrNotFound, so a damaged session is treated as
// absent and never panics or fails every request of its browser.
//
// # Writes and crashes
//
// Every write goes to a temp file in the same subdirectory and is renamed
// over the session file, so a reader, or a process killed at any moment of
// a write, sees the old file or the new one, never a mix. Create, Update,
// Touch and Delete hold the subdirectory's lock (an in-process lock plus a
// flock on its .lock file) from reading the current file to the rename, so
// Create never overwrites, Update compares versions and Touch never
// creates, also between processes sharing the directory. Loads take no
// lock. By default writes are not fsynced: they survive the process
// crashing but a power failure may lose the last ones; WithDurable fsyncs
// the file and its directory on every write.
//
// # Read cache
//
// Decoded records are kept in memory (WithCacheSize; 64 MiB by default) so
// that loading a session again costs no file I/O. An fsnotify watcher on
// the root and its subdirectories evicts a session whenever any process
// changes its file; on a watcher error or event overflow the whole cache is
// dropped. Another process's write therefore becomes visible to this store
// as soon as its file event is delivered: typically within microseconds,
// and the bound the conformance tests declare is one second. If the watcher
// cannot start (inotify limits, network file systems, which deliver no
// events for other machines' writes) the store logs it once and runs
// without the cache. On a network file system shared by several machines,
// turn the cache off with WithCacheSize(0).
//
// # Cleanup
//
// Cleanup (and Sweep, which also reports) reads only the header of each
// file, tolerates files vanishing under it, removes temp files left by
// crashed writers, and leaves anything that is not a session of this store
// in place, reporting it once in the log.
//
// The store needs flock: New fails on systems without it (Windows, Plan 9)
// with an error wrapping errors.ErrUnsupported.
package disk
