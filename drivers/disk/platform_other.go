//go:build !unix

package disk

import (
	"errors"
	"fmt"
	"os"
	"runtime"
)

const oNoFollow = 0

// platformSupported refuses systems without flock: the store's guarantees
// between processes rest on it.
func platformSupported() error {
	return fmt.Errorf("%w on %s (the store needs flock)", errors.ErrUnsupported, runtime.GOOS)
}

func tryLock(*os.File) (bool, error)   { return false, platformSupported() }
func unlock(*os.File) error            { return platformSupported() }
func isCurrent(*os.File) (bool, error) { return false, platformSupported() }
