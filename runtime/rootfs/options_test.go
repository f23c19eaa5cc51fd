package rootfs

import (
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseMountOptions(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []string
		want MountOptions
	}{
		{"flags and data", []string{"nosuid", "noexec", "mode=755", "size=65536k"}, MountOptions{Flags: unix.MS_NOSUID | unix.MS_NOEXEC, Data: "mode=755,size=65536k"}},
		{"rbind ro", []string{"rbind", "ro"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY}},
		{"rw clears ro", []string{"ro", "rw"}, MountOptions{}},
		{"propagation", []string{"bind", "rslave"}, MountOptions{Flags: unix.MS_BIND, Propagation: unix.MS_SLAVE | unix.MS_REC}},
		{"ignored runtime options", []string{"tmpcopyup", "nodev"}, MountOptions{Flags: unix.MS_NODEV}},
	} {
		if got := ParseMountOptions(tc.in); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestParsePropagation(t *testing.T) {
	if p, ok := ParsePropagation(""); !ok || p != unix.MS_SLAVE|unix.MS_REC {
		t.Errorf("default propagation = %#x, %v", p, ok)
	}
	if p, ok := ParsePropagation("rshared"); !ok || p != unix.MS_SHARED|unix.MS_REC {
		t.Errorf("rshared = %#x, %v", p, ok)
	}
	if _, ok := ParsePropagation("sideways"); ok {
		t.Error("invalid propagation accepted")
	}
}
