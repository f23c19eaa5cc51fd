package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/internal/systest"
)

// The tests here check what Prepare, the pivots and Finalize decide to
// mount, create and mask, and in which order, with a recording double of
// the system calls (systest): no root needed. Targets are still resolved
// and created for real, in a directory of the test's; the kernel side is
// covered by the integration tests (integration/ociruntime).

var _ Syscalls = (*systest.Recorder)(nil)

// newRoot returns an empty container root and a recorder for it.
func newRoot(t *testing.T) (string, *systest.Recorder) {
	t.Helper()
	root := filepath.Join(t.TempDir(), "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	rec, err := systest.New(root)
	if err != nil {
		t.Fatal(err)
	}
	return rec.Root, rec
}

// mkfile creates the files (a trailing / makes a directory) under root.
func mkfile(t *testing.T, root string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func linuxSpec(mounts ...specs.Mount) *specs.Spec {
	return &specs.Spec{Root: &specs.Root{Path: "rootfs"}, Linux: &specs.Linux{}, Mounts: mounts}
}

var (
	procMount = specs.Mount{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}}
	devMount  = specs.Mount{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}}
	ptsMount  = specs.Mount{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}}
	sysMount  = specs.Mount{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
)

// userNSDeviceCalls bind the host's nodes, in a user namespace.
var userNSDeviceCalls = []string{
	"mount host:/dev/null on /dev/null (MS_BIND)",
	"mount host:/dev/zero on /dev/zero (MS_BIND)",
	"mount host:/dev/full on /dev/full (MS_BIND)",
	"mount host:/dev/random on /dev/random (MS_BIND)",
	"mount host:/dev/urandom on /dev/urandom (MS_BIND)",
	"mount host:/dev/tty on /dev/tty (MS_BIND)",
}

var defaultDeviceCalls = []string{
	"mknod /dev/null c 1:3 0666", "chown /dev/null 0:0",
	"mknod /dev/zero c 1:5 0666", "chown /dev/zero 0:0",
	"mknod /dev/full c 1:7 0666", "chown /dev/full 0:0",
	"mknod /dev/random c 1:8 0666", "chown /dev/random 0:0",
	"mknod /dev/urandom c 1:9 0666", "chown /dev/urandom 0:0",
	"mknod /dev/tty c 5:0 0666", "chown /dev/tty 0:0",
}

// The root's propagation is set and the rootfs bound onto itself first;
// then come the spec's mounts in the spec's order, each with the flags
// its options give (a bind's ro by a remount, its propagation by a call of
// its own), and last the device nodes.
func TestPrepareMountsInSpecOrderAfterRootfsBind(t *testing.T) {
	root, rec := newRoot(t)
	src := t.TempDir()
	s := linuxSpec(procMount, devMount, ptsMount, sysMount,
		specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "ro", "rprivate"}},
		specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"rnoexec"}},
	)
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount proc on /proc type proc (MS_NOSUID|MS_NODEV|MS_NOEXEC)",
		"mount tmpfs on /dev type tmpfs (MS_NOSUID|MS_STRICTATIME) mode=755,size=65536k",
		"mount devpts on /dev/pts type devpts (MS_NOSUID|MS_NOEXEC) newinstance,ptmxmode=0666,mode=0620",
		"mount sysfs on /sys type sysfs (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)",
		"mount host:" + src + " on /data (MS_BIND|MS_REC)",
		"mount none on /data (MS_RDONLY|MS_REMOUNT|MS_BIND)",
		"mount none on /data (MS_REC|MS_PRIVATE)",
		"mount tmpfs on /run type tmpfs (0)",
		"mount_setattr /run set=NOEXEC recursive",
	}
	systest.CheckCalls(t, rec.Calls(), append(want, defaultDeviceCalls...))
	// The mount points were made, and /dev/ptmx points into the devpts.
	if link, err := os.Readlink(filepath.Join(root, "dev/ptmx")); err != nil || link != "pts/ptmx" {
		t.Errorf("/dev/ptmx links to %q (%v), want pts/ptmx", link, err)
	}
	for _, d := range []string{"proc", "dev/pts", "sys", "data", "run"} {
		if fi, err := os.Stat(filepath.Join(root, d)); err != nil || !fi.IsDir() {
			t.Errorf("mount point /%s: %v", d, err)
		}
	}
}

// A tmpfs over a directory of the image starts with that directory's mode.
func TestPrepareTmpfsKeepsModeOfExistingDirectory(t *testing.T) {
	root, rec := newRoot(t)
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	s := linuxSpec(specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}},
		specs.Mount{Destination: "/new", Type: "tmpfs", Source: "tmpfs", Options: []string{"size=1m"}})
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("mount tmpfs"), []string{
		"mount tmpfs on /tmp type tmpfs (0) mode=1777,size=1m",
		"mount tmpfs on /new type tmpfs (0) size=1m",
	})
}

// In a user namespace mknod is refused: every device is the host's node,
// bind-mounted onto a file made for it.
func TestPrepareDevicesBindMountedInUserNamespace(t *testing.T) {
	root, rec := newRoot(t)
	s := linuxSpec(devMount)
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UserNamespace}}
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec, UserNS: true}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), append([]string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount tmpfs on /dev type tmpfs (MS_NOSUID|MS_STRICTATIME) mode=755,size=65536k",
	}, userNSDeviceCalls...))
	if fi, err := os.Lstat(filepath.Join(root, "dev/null")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("/dev/null mount point: %v, %v; want an empty file", fi, err)
	}
}

// The spec's devices follow the defaults, with their own type, mode and
// owner; an image's placeholder does not stop them.
func TestPrepareCreatesSpecDevices(t *testing.T) {
	root, rec := newRoot(t)
	mode := os.FileMode(0o600)
	uid, gid := uint32(5), uint32(6)
	s := linuxSpec()
	s.Linux.Devices = []specs.LinuxDevice{
		{Path: "/dev/fuse", Type: "c", Major: 10, Minor: 229, FileMode: &mode, UID: &uid, GID: &gid},
		{Path: "/dev/loop0", Type: "b", Major: 7, Minor: 0},
	}
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("mknod", "chown"), append(append([]string{}, defaultDeviceCalls...),
		"mknod /dev/fuse c 10:229 0600", "chown /dev/fuse 5:6",
		"mknod /dev/loop0 b 7:0 0666", "chown /dev/loop0 0:0",
	))
}

// A /dev bound from the host already has its nodes: none are made.
func TestPrepareBoundDevGetsNoDevices(t *testing.T) {
	root, rec := newRoot(t)
	src := t.TempDir()
	s := linuxSpec(specs.Mount{Destination: "/dev", Type: "bind", Source: src, Options: []string{"rbind"}})
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Calls(), []string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount host:" + src + " on /dev (MS_BIND|MS_REC)",
	})
}

// Sharing the host's mount namespace, the host's propagation is not the
// container's to change.
func TestPrepareHostMountNamespaceKeepsPropagation(t *testing.T) {
	root, rec := newRoot(t)
	s := linuxSpec(procMount)
	s.Linux.RootfsPropagation = "private"
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec, HostMountNS: true}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("mount"), []string{
		"mount / on / (MS_BIND|MS_REC)",
		"mount proc on /proc type proc (MS_NOSUID|MS_NODEV|MS_NOEXEC)",
	})
}

// A shared root propagation makes the rootfs's parent mount private first:
// pivot_root refuses a new root whose parent is shared.
func TestPrepareSharedPropagationPrivatizesParent(t *testing.T) {
	root, rec := newRoot(t)
	s := linuxSpec()
	s.Linux.RootfsPropagation = "rshared"
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	calls := rec.Matching("mount")
	if len(calls) != 3 || calls[0] != "mount none on host:/ (MS_REC|MS_SHARED)" ||
		!strings.HasPrefix(calls[1], "mount none on host:/") || !strings.HasSuffix(calls[1], " (MS_PRIVATE)") ||
		calls[2] != "mount / on / (MS_BIND|MS_REC)" {
		t.Errorf("calls: %q; want rshared on /, the rootfs's parent mount made private, then the rootfs bind", calls)
	}
}

// In a user namespace sysfs can only be mounted for a network namespace it
// owns: on EPERM the /sys the init sees is bound instead, with the flags.
func TestPrepareSysfsFallsBackToBindInUserNamespace(t *testing.T) {
	root, rec := newRoot(t)
	rec.Fail = map[string]error{"mount sysfs": unix.EPERM}
	s := linuxSpec(sysMount)
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UserNamespace}}
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec, UserNS: true}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("mount"), append([]string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount sysfs on /sys type sysfs (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC) = EPERM",
		"mount host:/sys on /sys (MS_BIND|MS_REC)",
		"mount none on /sys (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND)",
	}, userNSDeviceCalls...))
	// Without a user namespace, EPERM is an error.
	root, rec = newRoot(t)
	rec.Fail = map[string]error{"mount sysfs": unix.EPERM}
	if err := Prepare(&Config{Rootfs: root, Spec: linuxSpec(sysMount), Sys: rec}); err == nil {
		t.Error("sysfs EPERM without a user namespace: no error")
	}
}

// cgroup v1: a tmpfs with the container's directory of each hierarchy
// bound into it, in name order, and read-only only once they are in.
func TestPrepareCgroupV1(t *testing.T) {
	root, rec := newRoot(t)
	cpu, mem := t.TempDir(), t.TempDir()
	s := linuxSpec(specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}})
	c := &Config{Rootfs: root, Spec: s, Sys: rec, CgroupPaths: map[string]string{"memory": mem, "cpu,cpuacct": cpu}}
	if err := Prepare(c); err != nil {
		t.Fatal(err)
	}
	flags := "MS_NOSUID|MS_NODEV|MS_NOEXEC"
	systest.CheckCalls(t, rec.Matching("mount"), []string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount tmpfs on /sys/fs/cgroup type tmpfs (" + flags + "|MS_RELATIME) mode=755",
		"mount host:" + cpu + " on /sys/fs/cgroup/cpu,cpuacct (MS_BIND)",
		"mount none on /sys/fs/cgroup/cpu,cpuacct (MS_RDONLY|" + flags + "|MS_REMOUNT|MS_BIND|MS_RELATIME)",
		"mount host:" + mem + " on /sys/fs/cgroup/memory (MS_BIND)",
		"mount none on /sys/fs/cgroup/memory (MS_RDONLY|" + flags + "|MS_REMOUNT|MS_BIND|MS_RELATIME)",
		"mount none on /sys/fs/cgroup (MS_RDONLY|" + flags + "|MS_REMOUNT|MS_RELATIME) mode=755",
	})
}

// cgroup v2: a cgroup2 mount of its own with a cgroup namespace; where the
// kernel refuses it, and without one, the container's own directory.
func TestPrepareCgroupV2(t *testing.T) {
	m := specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "ro"}}
	for _, tc := range []struct {
		name   string
		ns     bool
		refuse bool
		want   []string
	}{
		{"cgroupns", true, false, []string{"mount cgroup2 on /sys/fs/cgroup type cgroup2 (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC)"}},
		{"cgroupns refused", true, true, []string{
			"mount cgroup2 on /sys/fs/cgroup type cgroup2 (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC) = EPERM",
			"mount host:%s on /sys/fs/cgroup (MS_BIND|MS_REC)",
			"mount none on /sys/fs/cgroup (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND)",
		}},
		{"no cgroupns", false, false, []string{
			"mount host:%s on /sys/fs/cgroup (MS_BIND|MS_REC)",
			"mount none on /sys/fs/cgroup (MS_RDONLY|MS_NOSUID|MS_NODEV|MS_NOEXEC|MS_REMOUNT|MS_BIND)",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, rec := newRoot(t)
			if tc.refuse {
				rec.Fail = map[string]error{"mount cgroup2": unix.EPERM}
			}
			host := t.TempDir()
			s := linuxSpec(m)
			if tc.ns {
				s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.CgroupNamespace}}
			}
			if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec, CgroupPaths: map[string]string{"": host}}); err != nil {
				t.Fatal(err)
			}
			want := []string{"mount none on host:/ (MS_REC|MS_SLAVE)", "mount / on / (MS_BIND|MS_REC)"}
			for _, w := range tc.want {
				want = append(want, strings.ReplaceAll(w, "%s", host))
			}
			systest.CheckCalls(t, rec.Matching("mount"), want)
		})
	}
}

// A symlink in the image may not send a mount out of the root, nor into
// /proc or /sys, and nothing but procfs may go on /proc: such a spec fails
// before anything is mounted there.
func TestPrepareRefusesRedirectedTargets(t *testing.T) {
	for _, tc := range []struct {
		name  string
		image map[string]string // symlinks: path -> target
		mount specs.Mount
		err   string
	}{
		{"symlink into /proc", map[string]string{"/data": "/proc/sys/kernel"},
			specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs"}, "inside /proc"},
		{"symlink into /sys", map[string]string{"/data": "../sys/kernel"},
			specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs"}, "inside /sys"},
		{"proc through a symlink", map[string]string{"/proc": "/somewhere"},
			specs.Mount{Destination: "/proc", Type: "proc", Source: "proc"}, "must be mounted on an ordinary directory"},
		{"tmpfs on /proc", nil,
			specs.Mount{Destination: "/proc", Type: "tmpfs", Source: "tmpfs"}, "not of type proc"},
		{"bind inside /proc", nil,
			specs.Mount{Destination: "/proc/sys/kernel/core_pattern", Type: "bind", Source: "/dev/null", Options: []string{"bind"}}, "inside /proc"},
		{"the root itself", nil,
			specs.Mount{Destination: "/", Type: "tmpfs", Source: "tmpfs"}, "the container's root itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root, rec := newRoot(t)
			mkfile(t, root, "proc/sys/kernel/", "sys/kernel/", "somewhere/")
			for p, target := range tc.image {
				if err := os.RemoveAll(filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
					t.Fatal(err)
				}
			}
			err := Prepare(&Config{Rootfs: root, Spec: linuxSpec(tc.mount), Sys: rec})
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %v, want one saying %q", err, tc.err)
			}
			systest.CheckCalls(t, rec.Calls(), []string{"mount none on host:/ (MS_REC|MS_SLAVE)", "mount / on / (MS_BIND|MS_REC)"})
		})
	}
}

// lxcfs's files may be bound over their /proc files, and a symlink that
// stays in the root is followed there.
func TestPrepareAllowedTargets(t *testing.T) {
	root, rec := newRoot(t)
	mkfile(t, root, "proc/meminfo", "var/lib/")
	if err := os.Symlink("/var/lib", filepath.Join(root, "data")); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "meminfo")
	mkfile(t, filepath.Dir(src), "meminfo")
	s := linuxSpec(procMount,
		specs.Mount{Destination: "/proc/meminfo", Type: "bind", Source: src, Options: []string{"bind"}},
		specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs"})
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec}); err != nil {
		t.Fatal(err)
	}
	systest.CheckCalls(t, rec.Matching("mount"), []string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount proc on /proc type proc (MS_NOSUID|MS_NODEV|MS_NOEXEC)",
		"mount host:" + src + " on /proc/meminfo (MS_BIND)",
		"mount tmpfs on /var/lib type tmpfs (0) mode=0755",
	})
}

// A bind source the init cannot reach in a user namespace, and every
// idmapped mount, come from the runtime as a descriptor: an O_PATH handle
// to bind, or a detached tree to attach.
func TestPrepareBindSourcesFromTheRuntime(t *testing.T) {
	root, rec := newRoot(t)
	reachable := t.TempDir()
	opened := t.TempDir()
	s := linuxSpec(
		specs.Mount{Destination: "/a", Type: "bind", Source: reachable, Options: []string{"bind"}},
		specs.Mount{Destination: "/b", Type: "bind", Source: "/nonexistent/for/the/init", Options: []string{"bind"}},
		specs.Mount{Destination: "/c", Type: "bind", Source: reachable, Options: []string{"bind", "idmap"}},
	)
	s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.MountNamespace}, {Type: specs.UserNamespace}}
	var asked []int
	source := func(i int) (*os.File, error) {
		asked = append(asked, i)
		if s.Mounts[i].Destination == "/c" {
			fd, err := rec.OpenTree(unix.AT_FDCWD, reachable, unix.OPEN_TREE_CLONE)
			return os.NewFile(uintptr(fd), "tree"), err
		}
		return os.OpenFile(opened, unix.O_PATH|unix.O_CLOEXEC, 0)
	}
	if err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec, UserNS: true, MountSource: source}); err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0] != 1 || asked[1] != 2 {
		t.Errorf("mount sources asked for: %v, want [1 2]", asked)
	}
	systest.CheckCalls(t, rec.Matching("mount", "move_mount"), append([]string{
		"mount none on host:/ (MS_REC|MS_SLAVE)",
		"mount / on / (MS_BIND|MS_REC)",
		"mount host:" + reachable + " on /a (MS_BIND)",
		"mount host:" + opened + " on /b (MS_BIND)",
		"move_mount tree:host:" + reachable + " on /c",
	}, userNSDeviceCalls...))
}

// Recursive options need mount_setattr(2): without it the mount fails
// rather than going on without them.
func TestPrepareRecursiveOptionsNeedMountSetattr(t *testing.T) {
	root, rec := newRoot(t)
	rec.Fail = map[string]error{"mount_setattr": unix.ENOSYS}
	s := linuxSpec(specs.Mount{Destination: "/data", Type: "tmpfs", Source: "tmpfs", Options: []string{"rro", "rnosuid"}})
	err := Prepare(&Config{Rootfs: root, Spec: s, Sys: rec})
	if err == nil || !strings.Contains(err.Error(), "mount options rro,rnosuid need mount_setattr(2)") {
		t.Fatalf("err = %v", err)
	}
}
