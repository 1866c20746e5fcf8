//go:build !unix

package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"runtime"
)

// platformSupported refuses systems without flock: the store's guarantees
// between processes rest on it. The functions below exist only so that the
// package compiles; New fails before any of them runs.
func platformSupported() error {
	return fmt.Errorf("%w on %s (the store needs flock)", errors.ErrUnsupported, runtime.GOOS)
}

type fileInfo struct {
	dev, ino uint64
	size     int64
	regular  bool
	perm     fs.FileMode
	linked   bool
}

func (a fileInfo) sameFile(b fileInfo) bool { return a == b }
func (a fileInfo) unfinished() bool         { return false }

var errPlatform = platformSupported()

func openRead(string) (int, error)                               { return -1, errPlatform }
func openWrite(string) (int, error)                              { return -1, errPlatform }
func createExcl(string, fs.FileMode) (int, error)                { return -1, errPlatform }
func openLock(string, fs.FileMode) (int, error)                  { return -1, errPlatform }
func closeFd(int) error                                          { return errPlatform }
func statFd(int, string) (fileInfo, error)                       { return fileInfo{}, errPlatform }
func lstatPath(string) (fileInfo, error)                         { return fileInfo{}, errPlatform }
func readFull(int, string, []byte) (int, error)                  { return 0, errPlatform }
func writeFile(int, string, []byte, int64) error                 { return errPlatform }
func syncFd(int, string) error                                   { return errPlatform }
func renameFile(string, string) error                            { return errPlatform }
func exchangeFiles(string, string) error                         { return errPlatform }
func removeFile(string) error                                    { return errPlatform }
func tryLock(int, string, bool) (bool, error)                    { return false, errPlatform }
func unlockFd(int, string) error                                 { return errPlatform }
func checkWritable(string) error                                 { return errPlatform }
func syncDir(string) error                                       { return errPlatform }
func pathErr(op, path string, err error) error                   { return &fs.PathError{Op: op, Path: path, Err: err} }
func mapCounterTable(string, fs.FileMode) (*counterTable, error) { return nil, errPlatform }
func (t *counterTable) unmap() error                             { return errPlatform }
func createUnfinished(string) (int, error)                       { return -1, errPlatform }
func chmodFd(int, string, fs.FileMode) error                     { return errPlatform }
