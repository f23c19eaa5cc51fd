package rootfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

// statfsFlags carries over each locked flag statfs(2) reports, and no other.
func TestStatfsFlags(t *testing.T) {
	for _, tc := range []struct {
		st   int64
		want uintptr
	}{
		{0, 0},
		{unix.ST_RDONLY, unix.MS_RDONLY},
		{unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC, unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
		{unix.ST_NOATIME | unix.ST_NODIRATIME | unix.ST_RELATIME, unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME},
		// Flags that are not locked (ST_SYNCHRONOUS, ST_MANDLOCK) are dropped.
		{unix.ST_RDONLY | unix.ST_SYNCHRONOUS | unix.ST_MANDLOCK, unix.MS_RDONLY},
	} {
		if got := statfsFlags(tc.st); got != tc.want {
			t.Errorf("statfsFlags(%#x) = %#x, want %#x", tc.st, got, tc.want)
		}
	}
}
