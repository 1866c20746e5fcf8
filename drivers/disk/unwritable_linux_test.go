package disk

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// makeUnwritable makes dir unwritable for this process until the test
// ends. Permission bits do not bind root, so as root it sets the immutable
// attribute (chattr +i), which binds everyone.
func makeUnwritable(tb testing.TB, dir string) {
	tb.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { os.Chmod(dir, 0o700) })
		return
	}
	setFlag := func(on bool) error {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
		if err != nil {
			return err
		}
		if on {
			flags |= fsImmutable
		} else {
			flags &^= fsImmutable
		}
		return unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags))
	}
	if err := setFlag(true); err != nil {
		tb.Skipf("SKIPPING: running as root, where permission bits do not bind, and cannot make %s immutable (chattr +i needs CAP_LINUX_IMMUTABLE and a file system with the attribute): %v", dir, err)
	}
	tb.Cleanup(func() {
		if err := setFlag(false); err != nil {
			tb.Errorf("chattr -i %s: %v", dir, err)
		}
	})
}

// fsImmutable is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutable = 0x10
