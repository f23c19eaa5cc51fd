package rootfs

import (
	"slices"
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
		{"rw clears ro", []string{"ro", "rw"}, MountOptions{Cleared: unix.MS_RDONLY}},
		{"propagation", []string{"bind", "rslave"}, MountOptions{Flags: unix.MS_BIND, Propagation: unix.MS_SLAVE | unix.MS_REC}},
		{"tmpcopyup", []string{"tmpcopyup", "nodev"}, MountOptions{Flags: unix.MS_NODEV, CopyUp: true}},
		{"recursive", []string{"rbind", "rro", "rnosuid", "rexec"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC,
			RecSet: unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID, RecClear: unix.MOUNT_ATTR_NOEXEC}},
		{"rrw undoes rro", []string{"rro", "rrw"}, MountOptions{RecClear: unix.MOUNT_ATTR_RDONLY}},
		{"recursive atime", []string{"rnoatime"}, MountOptions{RecSet: unix.MOUNT_ATTR_NOATIME, RecClear: unix.MOUNT_ATTR__ATIME}},
		{"flags mount(2) takes", []string{"nosymfollow", "lazytime", "iversion", "silent"},
			MountOptions{Flags: unix.MS_NOSYMFOLLOW | unix.MS_LAZYTIME | unix.MS_I_VERSION | unix.MS_SILENT}},
		{"idmap", []string{"rbind", "idmap"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC, IDMap: true}},
		{"ridmap", []string{"rbind", "ridmap"}, MountOptions{Flags: unix.MS_BIND | unix.MS_REC, IDMap: true, RecursiveIDMap: true}},
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

// Every mount option runc 1.5.2 lists in its features is known, and no
// other: an option runc knows must not be passed to the kernel as data, nor
// be dropped.
func TestKnownMountOptionsMatchRunc(t *testing.T) {
	runc := []string{"async", "atime", "bind", "defaults", "dev", "diratime", "dirsync", "exec", "iversion",
		"lazytime", "loud", "mand", "noatime", "nodev", "nodiratime", "noexec", "noiversion", "nolazytime",
		"nomand", "norelatime", "nostrictatime", "nosuid", "nosymfollow", "private", "ratime", "rbind", "rdev",
		"rdiratime", "relatime", "remount", "rexec", "rnoatime", "rnodev", "rnodiratime", "rnoexec",
		"rnorelatime", "rnostrictatime", "rnosuid", "rnosymfollow", "ro", "rprivate", "rrelatime", "rro", "rrw",
		"rshared", "rslave", "rstrictatime", "rsuid", "rsymfollow", "runbindable", "rw", "shared", "silent",
		"slave", "strictatime", "suid", "symfollow", "sync", "tmpcopyup", "unbindable"}
	got := KnownMountOptions()
	slices.Sort(got)
	if !slices.Equal(got, runc) {
		t.Errorf("known mount options\n%v\nwant runc's\n%v", got, runc)
	}
	for _, o := range runc {
		if ParseMountOptions([]string{o}).Data != "" {
			t.Errorf("option %q is passed to the kernel as data", o)
		}
	}
}
