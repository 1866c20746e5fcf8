package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
)

// Defaults of the options.
const (
	DefaultFileMode  fs.FileMode = 0o600
	DefaultDirMode   fs.FileMode = 0o700
	DefaultCacheSize             = 64 << 20
)

// An Option configures a Store; pass options to New.
type Option func(*options) error

type options struct {
	fileMode, dirMode fs.FileMode
	durable           bool
	cacheSize         int
	logger            *slog.Logger
}

// WithDurable makes every write reach stable storage before it returns:
// the file is fsynced before it is renamed into place and its directory
// after. The default is false: a write survives the process crashing at any
// point (renames are atomic), but a power failure or kernel crash may lose
// the last seconds of writes, and some file systems may then leave a
// session file empty, which the store reports as corrupt and treats as
// absent. Sessions rarely justify the cost: an fsync takes from tens of
// microseconds to tens of milliseconds depending on the device (see the
// benchmarks in the README).
func WithDurable(on bool) Option {
	return func(o *options) error { o.durable = on; return nil }
}

// WithCacheSize sets how many bytes of decoded sessions the read cache may
// hold (DefaultCacheSize, 64 MiB, by default); 0 turns the cache off, as
// a directory shared by several machines (a network file system) needs.
// The budget is split evenly over the store's 256 subdirectories, and a
// session larger than its share is never cached.
func WithCacheSize(bytes int) Option {
	return func(o *options) error {
		if bytes < 0 {
			return fmt.Errorf("negative cache size %d", bytes)
		}
		o.cacheSize = bytes
		return nil
	}
}

// WithLogger sets where the store reports what it cannot return as an
// error: running without the cache, files it skipped. The default is
// slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.logger = l
		return nil
	}
}

// WithPermissions sets the mode of the files and directories the store
// creates (DefaultFileMode 0600 and DefaultDirMode 0700 by default; the
// process umask still applies). The owner must keep read and write access
// to files and full access to directories.
func WithPermissions(file, dir fs.FileMode) Option {
	return func(o *options) error {
		if file&^fs.ModePerm != 0 || file&0o600 != 0o600 {
			return fmt.Errorf("file mode %v must be permission bits including 0600", file)
		}
		if dir&^fs.ModePerm != 0 || dir&0o700 != 0o700 {
			return fmt.Errorf("directory mode %v must be permission bits including 0700", dir)
		}
		o.fileMode, o.dirMode = file, dir
		return nil
	}
}
