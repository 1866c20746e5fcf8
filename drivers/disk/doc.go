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
// WithPermissions). Each subdirectory also holds a .lock file and one
// spare file (.spare-<token>) per open store that has written there; the
// root holds one .store-<token> file per open store, the read cache's
// .cache table and the owners directory of the owner index (256
// subdirectories again, made when first used).
//
// # File format
//
// A session file holds a versioned header (format version, ATime, Created,
// Version, data length, Owner; times exact: Unix seconds and nanoseconds),
// the data, and CRC-32C checksums of the header and of the whole file.
// Files of format version 1, written before owners existed, still load
// (with no Owner); every write makes version 2. The store
// never consults file times, which mount options such as relatime or
// noatime make unreliable, and never reads a clock. A truncated, altered or
// foreign file is detected: Load reports it with an error wrapping both
// ErrCorrupt and session.ErrNotFound, so a damaged session is treated as
// absent and never panics or fails every request of its browser.
//
// # Writes and crashes
//
// A write never changes a session file in place. It fills the writing
// store's spare file in the same subdirectory, then swaps the spare and
// the session file with one atomic rename (renameat2 RENAME_EXCHANGE on
// Linux; elsewhere, or on a file system without it, the spare is renamed
// over the session file), so a reader, or a process killed at any moment
// of a write, sees the old file or the new one, never a mix. The replaced
// file becomes the spare for the next write: files are reused, not made
// and freed per write, which is what costs most on many file systems. A
// new session's file is created at its name with no permission bits,
// written, then given its mode: until then readers take it for missing,
// so a Create that a crash interrupts leaves no torn session. A
// reader protects the file it reads with a shared flock, and a writer
// never rewrites a file a reader holds (see store.go for the argument).
//
// Create, Update, Touch and Delete hold the subdirectory's lock (an
// in-process lock plus a flock on its .lock file) from reading the current
// file to the rename, so Create never overwrites, Update compares versions
// and Touch never creates, also between processes sharing the directory.
// Loads take no lock. By default writes are not fsynced: they survive the
// process crashing but a power failure may lose the last ones; WithDurable
// fsyncs the file and its directory on every write. All processes sharing
// a directory must run a version of this package with the same write
// scheme: upgrade them together.
//
// # Read cache
//
// Decoded records are kept in memory (WithCacheSize; 64 MiB by default) so
// that loading a session again costs no file I/O; a store's own writes
// keep what they wrote cached. The cache stays exact across processes
// without watching files: every store over a directory maps the same small
// table of version counters (<root>/.cache, 512 KiB, mmap MAP_SHARED), one
// counter per group of keys. A writer, under the subdirectory's lock,
// makes its key's counter odd before it renames or removes the file and
// even after; a Load serves a cached record only if the counter still
// holds the value the record was cached with. Another process's write is
// therefore seen by the very next Load (staleness 0), and a write costs two
// stores to shared memory, not a system call or a file event. A store that
// cannot map the table logs it once and runs without the cache. Processes
// on different machines share no memory: on a network file system used by
// several machines, turn the cache off with WithCacheSize(0). Session
// files changed or removed behind the store's back (by hand, by another
// program) may still be served from a cache until the next write of that
// key: end sessions through a store (Delete, Cleanup, the session
// manager), not with rm. If the .cache file itself is removed or
// replaced, each store notices within a second (one stat a second, on a
// Load) and stops caching for good, since stores mapping different tables
// would no longer see each other's writes.
//
// The cache used to be kept exact by an fsnotify watcher. The watch cost
// every write 5 to 7 µs inside its own system call, so the cached store
// wrote slower than the uncached one, and a write by another process was
// seen only once its event was delivered; the shared table costs a write
// two memory stores and is never stale. fsnotify is therefore no longer a
// dependency.
//
// # Owners
//
// The store implements session.OwnerIndex with an index, not a scan: for
// each owner, a small file under <root>/owners/ lists the keys of its
// sessions, written like a session file (atomically, under a lock of its
// own), so it survives restarts and crashes and is shared by every process
// using the directory. A key joins its owner's index before the session
// is written with that Owner and leaves it after the session is deleted,
// cleaned up or given another Owner; LoadOwned checks each listed key
// against the Owner in its session file, so a crash between the two writes
// can leave an extra key in an index, which LoadOwned never returns and
// removes, but never a missing one. LoadOwned reads one index file and the
// owner's sessions (from the read cache where it can): its cost does not
// grow with the number of sessions in the store.
//
// # Cleanup
//
// Cleanup (and Sweep, which also reports) reads only the header of each
// file, tolerates files vanishing under it, removes the spare and .store
// files of stores that crashed (a store holds its .store file flocked
// while it is open, and Close removes its files), and leaves anything that
// is not a session of this store in place, reporting it once in the log.
//
// The store needs flock: New fails on systems without it (Windows, Plan 9)
// with an error wrapping errors.ErrUnsupported.
package disk
