package ociruntime

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	runc "github.com/containerd/go-runc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// runOutput runs the container to completion and returns what it printed.
func (e *env) runOutput() (string, error) {
	e.t.Helper()
	e.writeSpec()
	cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--bundle", e.bundle, e.id)
	out, err := cmd.Output()
	return string(out), err
}

// CVE-2019-5736: the init runs from the runtime's copy sealed once per
// build (runtime/internal/exeseal), never from the installed binary: a
// container process cannot open /proc/<init>/exe, or any of the init's
// map_files, for writing, and the file is execute-only.
//
// On a kernel without overlayfs (which the create would have loaded), the
// init must run from the sealed, execute-only memfd instead.
func TestInitBinaryCannotBeOverwritten(t *testing.T) {
	e := newEnv(t, "true")
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	assertInitBinary(t, e.state().Pid, e.root)
}

// assertInitBinary checks that the process pid runs from the copy sealed
// under root, or, on a kernel without overlayfs, from the sealed memfd.
func assertInitBinary(t *testing.T, pid int, root string) {
	t.Helper()
	if !kernelHasOverlayfs(t) {
		assertMemfdInit(t, pid)
		return
	}
	assertSealedInit(t, pid, root)
}

// needOverlayfs skips a test of the copy sealed once on a kernel without
// overlayfs, where the runtime copies itself per process.
func needOverlayfs(t *testing.T) {
	t.Helper()
	if !kernelHasOverlayfs(t) {
		t.Skip("no overlayfs: the runtime copies itself into a memfd per process")
	}
}

func kernelHasOverlayfs(t *testing.T) bool {
	t.Helper()
	fss, err := os.ReadFile("/proc/filesystems")
	if err != nil {
		t.Fatal(err)
	}
	return slices.Contains(strings.Fields(string(fss)), "overlay")
}

// sealedCopy is the one copy of the runtime under the state root.
func sealedCopy(t *testing.T, root string) unix.Stat_t {
	t.Helper()
	bin := filepath.Join(root, "@exe", "bin")
	names, err := filepath.Glob(filepath.Join(bin, "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || !strings.HasPrefix(filepath.Base(names[0]), "hostnet-runc.") {
		t.Errorf("want one sealed copy in %s, have %q", bin, names)
		return unix.Stat_t{}
	}
	var st unix.Stat_t
	if err := unix.Lstat(names[0], &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode != unix.S_IFREG|0o111 || st.Uid != 0 || st.Nlink != 1 {
		t.Errorf("sealed copy %s has mode %#o, uid %d, %d links; want a regular file, 0111, root's, one link", names[0], st.Mode, st.Uid, st.Nlink)
	}
	return st
}

// assertSealedInit checks that the process pid runs from the sealed copy
// under root, on a read-only overlay, not writable through any path a
// container can reach.
func assertSealedInit(t *testing.T, pid int, root string) {
	t.Helper()
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	// Execute-only: exec'd from a file it cannot read, the process is
	// non-dumpable from its first instruction.
	if st.Mode != unix.S_IFREG|0o111 || st.Uid != 0 {
		t.Errorf("the init's executable has mode %#o, uid %d; want an execute-only regular file of root's", st.Mode, st.Uid)
	}
	var installed unix.Stat_t
	if err := unix.Stat(runtimeBin, &installed); err != nil {
		t.Fatal(err)
	}
	if st.Dev == installed.Dev && st.Ino == installed.Ino {
		t.Errorf("the init runs from the installed binary %s", runtimeBin)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(exe, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type != unix.OVERLAYFS_SUPER_MAGIC || fs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("the init's executable is on filesystem %#x (flags %#x), want a read-only overlay", fs.Type, fs.Flags)
	}
	assertNotWritable(t, exe)
	// The binary's mappings: overlayfs maps the lower file itself.
	maps, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/map_files")
	if err != nil {
		t.Fatal(err)
	}
	var mapped []uint64
	for _, m := range maps {
		p := "/proc/" + strconv.Itoa(pid) + "/map_files/" + m.Name()
		var ms unix.Stat_t
		if err := unix.Stat(p, &ms); err != nil || ms.Mode&unix.S_IFMT != unix.S_IFREG {
			continue
		}
		mapped = append(mapped, ms.Ino)
		assertNotWritable(t, p)
	}
	cp := sealedCopy(t, root)
	if st.Ino != cp.Ino {
		t.Errorf("the init runs from inode %d, not the sealed copy's %d", st.Ino, cp.Ino)
	}
	if !slices.Contains(mapped, cp.Ino) {
		t.Errorf("no mapping of the sealed copy among the init's map_files")
	}
}

func assertNotWritable(t *testing.T, path string) {
	t.Helper()
	for _, flags := range []int{os.O_WRONLY, os.O_RDWR | os.O_TRUNC} {
		f, err := os.OpenFile(path, flags, 0)
		if err == nil {
			f.Close()
			t.Errorf("%s could be opened with flags %#x", path, flags)
			continue
		}
		if !errors.Is(err, unix.EROFS) && !errors.Is(err, unix.ETXTBSY) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EPERM) {
			t.Errorf("open %s with flags %#x failed with %v, want EROFS/ETXTBSY/EACCES/EPERM", path, flags, err)
		}
	}
}

// Exec'd from a file it cannot read, the init is non-dumpable before any
// of its code runs and the kernel keeps its mm in the host's user
// namespace (CVE-2016-9962 class): in a user-namespaced container, its
// /proc files are owned by the host's root, not by the container's root
// (host uid 100000), which is what a readable binary, non-dumpable only
// once the init's Go code says so, would give.
func TestInitNonDumpableFromExec(t *testing.T) {
	e := newEnv(t, "true")
	withUserNamespace(t, e)
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	pid := e.state().Pid
	assertInitBinary(t, pid, e.root)
	var st unix.Stat_t
	if err := unix.Stat("/proc/"+strconv.Itoa(pid)+"/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Uid != 0 {
		t.Errorf("the init's /proc/%d/status is owned by uid %d, want 0: its mm is in the container's user namespace", pid, st.Uid)
	}
}

// The copy is made once per build and state root: a second create and an
// exec use it as it is.
func TestInitBinarySealedOnce(t *testing.T) {
	first := newEnv(t, "sleep", "60")
	if _, err := first.create(); err != nil {
		t.Fatalf("%v: %s", err, first.lastError())
	}
	needOverlayfs(t)
	cp := sealedCopy(t, first.root)
	second := sharingRoot(t, first)
	if _, err := second.create(); err != nil {
		t.Fatalf("%v: %s", err, second.lastError())
	}
	assertSealedInit(t, second.state().Pid, first.root)
	first.mustRT("exec", first.id, "true")
	if again := sealedCopy(t, first.root); again.Ino != cp.Ino || again.Ctim != cp.Ctim {
		t.Errorf("the copy was made again (inode %d → %d)", cp.Ino, again.Ino)
	}
	// Its directory is no container's: list shows the two, and no
	// warning about it.
	list := exec.Command(runtimeBin, "--root", first.root, "list", "-q")
	var stderr strings.Builder
	list.Stderr = &stderr
	out, err := list.Output()
	if ids := strings.Fields(string(out)); err != nil || stderr.Len() > 0 || !slices.Equal(ids, []string{first.id, second.id}) {
		t.Errorf("list -q: %v: %q, stderr %q", err, out, stderr.String())
	}
}

// assertMemfdInit checks that the process pid runs from the sealed,
// execute-only memfd copy of the runtime.
func assertMemfdInit(t *testing.T, pid int) {
	t.Helper()
	exe := "/proc/" + strconv.Itoa(pid) + "/exe"
	target, err := os.Readlink(exe)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(target, "/memfd:hostnet-runc") {
		t.Errorf("init runs from %q, want the sealed memfd", target)
	}
	var st unix.Stat_t
	if err := unix.Stat(exe, &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&0o7777 != 0o111 {
		t.Errorf("the memfd has mode %#o, want 0111", st.Mode&0o7777)
	}
	assertNotWritable(t, exe)
}

// sharingRoot is another container, running true, in first's state root.
func sharingRoot(t *testing.T, first *env) *env {
	e := newEnv(t, "true")
	e.root, e.id = first.root, first.id+"-2"
	e.spec.Linux.CgroupsPath += "-2"
	return e
}

// A copy that is not root's or not execute-only is never exec'd: the next
// create replaces it.
func TestTamperedSealedCopyReplaced(t *testing.T) {
	first := newEnv(t, "true")
	if _, err := first.create(); err != nil {
		t.Fatalf("%v: %s", err, first.lastError())
	}
	needOverlayfs(t)
	cp := sealedCopy(t, first.root)
	names, _ := filepath.Glob(filepath.Join(first.root, "@exe", "bin", "hostnet-runc.*"))
	if err := os.Chown(names[0], 1000, 1000); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(names[0], 0o755); err != nil {
		t.Fatal(err)
	}
	second := sharingRoot(t, first)
	if _, err := second.create(); err != nil {
		t.Fatalf("%v: %s", err, second.lastError())
	}
	again := sealedCopy(t, first.root)
	if again.Ino == cp.Ino {
		t.Fatalf("the tampered copy (inode %d) was kept", cp.Ino)
	}
	assertSealedInit(t, second.state().Pid, first.root)
}

// Where the copy cannot be sealed once (here: its directory is not root's
// 0700 one, which is never repaired), the init runs from a sealed,
// execute-only memfd, as before: no error, a debug log line.
func TestInitBinaryMemfdFallback(t *testing.T) {
	e := newEnv(t, "true")
	e.global = []string{"--debug"}
	if err := os.MkdirAll(filepath.Join(e.root, "@exe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(e.root, "@exe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	assertMemfdInit(t, e.state().Pid)
	log, err := os.ReadFile(e.log)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "exeseal: ") || strings.Contains(string(log), `"level":"error"`) {
		t.Errorf("want a debug line saying why, and no error, in the log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(e.root, "@exe", "bin")); err == nil {
		t.Errorf("a copy was made in the untrusted directory")
	}
}

// CVE-2024-21626: no descriptor of the runtime reaches the container, and a
// working directory outside the root is refused.
func TestNoLeakedFdsOrCwd(t *testing.T) {
	// The trailing true keeps sh from exec'ing ls, so $$ is the shell.
	e := newEnv(t, "sh", "-c", "ls /proc/$$/fd; true")
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	fds := strings.Fields(out)
	for _, fd := range fds {
		if n, _ := strconv.Atoi(fd); n > 2 && n != 10 { // busybox sh keeps fd 10 for itself
			t.Errorf("container process has fd %s open; want only stdio (got %v)", fd, fds)
		}
	}

	for _, cwd := range []string{"/proc/self/fd/3", "/proc/self/fd/4", "/proc/self/fd/5", "/proc/self/fd/6"} {
		e := newEnv(t, "true")
		e.spec.Process.Cwd = cwd
		if _, err := e.create(); err == nil {
			t.Errorf("cwd %s was accepted", cwd)
		}
		e.assertGone()
	}
}

// A symlink in the image must not redirect a mount onto the host.
func TestMountTargetSymlinkStaysInRoot(t *testing.T) {
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := makeRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	hostDir := filepath.Join(t.TempDir(), "host-target")
	if err := os.Mkdir(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The absolute link must resolve inside the root, where the same path
	// exists too.
	if err := os.MkdirAll(filepath.Join(rootfs, hostDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(hostDir, filepath.Join(rootfs, "escape")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", "test -d "+hostDir+"/sub && echo inside")
	e.spec.Root.Path = rootfs
	e.spec.Root.Readonly = false
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/escape/sub", Type: "tmpfs", Source: "tmpfs"})
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if strings.TrimSpace(out) != "inside" {
		t.Errorf("the mount did not land inside the root (output %q)", out)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "sub")); !os.IsNotExist(err) {
		t.Errorf("the mount target was created on the host: %v", err)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), hostDir) {
		t.Error("something was mounted on the host directory")
	}
}

// A volume mounted over /proc is refused: the runtime writes sysctls there
// and masks its files, and only a real procfs may take them.
func TestSysctlNeedsRealProcfs(t *testing.T) {
	fake := t.TempDir()
	if err := os.MkdirAll(filepath.Join(fake, "sys", "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(fake, "sys", "kernel", "shm_rmid_forced"), []byte("0"), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "true")
	e.spec.Mounts = slices.DeleteFunc(e.spec.Mounts, func(m specs.Mount) bool { return m.Destination == "/proc" })
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/proc", Type: "bind", Source: fake, Options: []string{"rbind"}})
	e.spec.Linux.MaskedPaths, e.spec.Linux.ReadonlyPaths = nil, nil
	e.spec.Linux.Sysctl = map[string]string{"kernel.shm_rmid_forced": "1"}
	if _, err := e.create(); err == nil {
		t.Fatal("a sysctl was written to a fake procfs")
	}
	if msg := e.lastError(); !strings.Contains(msg, "cannot be mounted because it is not of type proc") {
		t.Errorf("logged error %q, want it to say /proc is not procfs", msg)
	}
	e.assertGone()
}

func TestMaskedAndReadonlyPaths(t *testing.T) {
	e := newEnv(t, "sh", "-c", `for p in /proc/keys /proc/timer_list /proc/sched_debug; do [ -e $p ] && echo "$p $(wc -c < $p)"; done
echo 1 2>/dev/null > /proc/sys/kernel/shm_rmid_forced && echo "/proc/sys writable"
echo "/sys/firmware $(ls /sys/firmware | wc -l)"`)
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		path, size, _ := strings.Cut(line, " ")
		if path == "/proc/sys" {
			t.Error("/proc/sys is writable in the container")
			continue
		}
		if strings.TrimSpace(size) != "0" {
			t.Errorf("masked %s shows %s bytes/entries, want 0", path, size)
		}
		checked++
	}
	if checked < 2 {
		t.Errorf("checked only %d masked paths: %q", checked, out)
	}
}

// A seccomp profile applies to the init and to processes exec'd later.
func TestSeccomp(t *testing.T) {
	e := newEnv(t, "sh", "-c", "mkdir /tmp/denied 2>&1; uname -s 2>&1; sleep 1000")
	e.spec.Root.Readonly = false
	e.spec.Root.Path = filepath.Join(t.TempDir(), "rootfs")
	if err := makeRootfs(e.spec.Root.Path); err != nil {
		t.Fatal(err)
	}
	errno := uint(38) // ENOSYS, distinct from the default EPERM
	e.spec.Linux.Seccomp = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchAARCH64},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno},
			{Names: []string{"uname"}, Action: specs.ActErrno, ErrnoRet: &errno},
		},
	}
	out := e.createCapturing()
	e.mustRT("start", e.id)
	var got string
	for i := 0; i < 100 && strings.Count(got, "\n") < 2; i++ {
		data, _ := os.ReadFile(out)
		got = string(data)
		time.Sleep(20 * time.Millisecond)
	}
	// busybox uname prints an empty name when uname(2) fails.
	if !strings.Contains(got, "Operation not permitted") || strings.Contains(got, "Linux") {
		t.Errorf("init not filtered: %q", got)
	}
	execOut, _ := exec.Command(runtimeBin, "--root", e.root, "exec", e.id, "sh", "-c", "mkdir /tmp/also-denied 2>&1; true").Output()
	if !strings.Contains(string(execOut), "Operation not permitted") {
		t.Errorf("exec'd process not filtered: %q", execOut)
	}
	if _, err := os.Stat(filepath.Join(e.spec.Root.Path, "tmp", "denied")); err == nil {
		t.Error("mkdir succeeded despite the profile")
	}
}

// A container root with CAP_SYS_ADMIN (in the host's user namespace, or in
// its own, which owns its mount namespace) may mount over /proc. exec must
// not then run whatever the container put at /proc/self/fd/N in place of
// the runtime's init, with the runtime's privileges: the init is exec'd
// through its descriptor.
func TestExecIgnoresFakeProc(t *testing.T) {
	for _, userns := range []bool{false, true} {
		t.Run(map[bool]string{false: "host user namespace", true: "own user namespace"}[userns], func(t *testing.T) {
			e := newEnv(t, "sleep", "1000")
			if userns {
				withUserNamespace(t, e)
			}
			caps := append(slices.Clone(e.spec.Process.Capabilities.Bounding), "CAP_SYS_ADMIN")
			e.spec.Process.Capabilities.Bounding, e.spec.Process.Capabilities.Effective, e.spec.Process.Capabilities.Permitted = caps, caps, caps
			if _, err := e.create(); err != nil {
				t.Fatalf("%v: %s", err, e.lastError())
			}
			e.mustRT("start", e.id)
			init := e.state().Pid
			fake := `mount -t tmpfs fake /proc && mkdir -p /proc/self/fd && for i in $(seq 0 64); do printf '#!/bin/sh\ntouch /dev/shm/pwned\n' >/proc/self/fd/$i; chmod +x /proc/self/fd/$i; done`
			if _, err := e.rt("exec", e.id, "sh", "-c", fake); err != nil {
				t.Fatalf("set up the fake /proc: %v: %s", err, e.lastError())
			}
			_, err := e.rt("exec", e.id, "true")
			t.Logf("exec with a fake /proc: %v (%s)", err, e.lastError())
			if _, serr := os.Stat("/proc/" + strconv.Itoa(init) + "/root/dev/shm/pwned"); serr == nil {
				t.Fatal("exec ran the container's fake /proc/self/fd/N instead of the runtime's init")
			}
		})
	}
}

// referenceRunc reports whether the runtime under test is runc itself
// (HOSTNET_RUNC pointed at it), for checks where hostnet-runc is stricter
// than runc or only its own error text can be matched.
func referenceRunc(t *testing.T) bool {
	t.Helper()
	out, err := exec.Command(runtimeBin, "--version").Output()
	return err == nil && strings.HasPrefix(string(out), "runc version")
}

// privateRootfs is a busybox root of the test's own, which it may change.
func privateRootfs(t *testing.T) string {
	t.Helper()
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := makeRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	return rootfs
}

// bindDev replaces the spec's /dev tmpfs with a bind mount of dir, as a
// pod author may ask for; the devpts, shm and mqueue mounts stay on top.
func bindDev(e *env, dir string) {
	for i, m := range e.spec.Mounts {
		if m.Destination == "/dev" {
			e.spec.Mounts[i] = specs.Mount{Destination: "/dev", Type: "bind", Source: dir, Options: []string{"rbind", "nosuid"}}
		}
	}
}

// mountPoints lists the mount points the process pid sees, in its root.
func mountPoints(t *testing.T, pid int) []string {
	t.Helper()
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var points []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if f := strings.Fields(line); len(f) > 4 {
			points = append(points, f[4])
		}
	}
	return points
}

// CVE-2025-31133: masked files are covered with the container's /dev/null.
// A /dev bind-mounted from a directory the attacker controls can make that
// a symlink (here to /proc/timer_list, itself masked): the masks would then
// show the symlink's target instead of hiding it. The runtime must check,
// by descriptor, that /dev/null is the real 1:3 character device.
func TestMaskedPathsNeedRealDevNull(t *testing.T) {
	dev := t.TempDir()
	if err := os.Symlink("/proc/timer_list", filepath.Join(dev, "null")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", "head -c 100 /proc/timer_list; head -c 100 /proc/keys; true")
	bindDev(e, dev)
	out, err := e.runOutput()
	if strings.Contains(out, "Timer List") {
		t.Fatalf("a masked path shows /proc/timer_list through the fake /dev/null: %q", out)
	}
	if err == nil {
		t.Fatalf("a /dev/null that is a symlink into /proc was used to mask paths (output %q)", out)
	}
	if msg := e.lastError(); !referenceRunc(t) && !strings.Contains(msg, "/dev/null") {
		t.Errorf("logged error %q, want it to name /dev/null", msg)
	}
	e.assertGone()
}

// CVE-2025-52565: with a terminal, the pty is bind-mounted on /dev/console.
// A /dev from a directory the attacker controls can make /dev/console a
// symlink into /proc: the target must be opened without following
// symlinks and checked before anything is mounted on it.
func TestConsoleTargetIsNotFollowed(t *testing.T) {
	dev := t.TempDir()
	if err := os.Symlink("/proc/uptime", filepath.Join(dev, "console")); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sleep", "1000")
	e.spec.Process.Terminal = true
	bindDev(e, dev)
	// The directory has no null device to mask paths with.
	e.spec.Linux.MaskedPaths = nil
	sock, err := runc.NewConsoleSocket(filepath.Join(t.TempDir(), "console.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	go func() {
		if master, err := sock.ReceiveMaster(); err == nil {
			t.Cleanup(func() { master.Close() })
		}
	}()
	if _, err := e.create("--console-socket", sock.Path()); err == nil {
		if slices.Contains(mountPoints(t, e.state().Pid), "/proc/uptime") {
			t.Fatal("the container's pty was mounted over /proc/uptime")
		}
		t.Fatal("a /dev/console that is a symlink into /proc was accepted")
	}
	if msg := e.lastError(); !referenceRunc(t) && !strings.Contains(msg, "/dev/console") {
		t.Errorf("logged error %q, want it to name /dev/console", msg)
	}
	e.assertGone()
}

// CVE-2025-52881 class: a symlink in the image must not turn a spec mount
// into one over /proc or /sys, like a writable tmpfs over /proc/sys/kernel
// that would take the runtime's later procfs writes. A mount may only land
// in /proc where the spec puts procfs itself (or one of the files lxcfs
// emulates), and in /sys only where the spec names the path itself.
func TestMountTargetResolvingIntoProcRefused(t *testing.T) {
	for _, tc := range []struct{ name, link, inside string }{
		{"proc", "/proc/sys/kernel", "/proc"},
		{"sys", "/sys/kernel", "/sys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "sys" && referenceRunc(t) {
				t.Skip("runc 1.5.2 only guards /proc")
			}
			rootfs := privateRootfs(t)
			if err := os.MkdirAll(filepath.Join(rootfs, "mnt"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(tc.link, filepath.Join(rootfs, "mnt", "x")); err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, "sleep", "1000")
			e.spec.Root.Path = rootfs
			e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt/x", Type: "tmpfs", Source: "tmpfs"})
			if _, err := e.create(); err == nil {
				if slices.Contains(mountPoints(t, e.state().Pid), tc.link) {
					t.Fatalf("a tmpfs was mounted over %s through the image's symlink", tc.link)
				}
				t.Fatalf("a mount target resolving to %s was accepted", tc.link)
			}
			if msg := e.lastError(); !strings.Contains(msg, tc.inside) {
				t.Errorf("logged error %q, want it to say the target is in %s", msg, tc.inside)
			}
			e.assertGone()
		})
	}
}

// The init of create is exec'd through its descriptor, as exec's is: a
// container that has joined another's mount namespace by path must not run
// what that container put at /proc/self/fd/N, with the runtime's
// privileges on the host.
func TestCreateIgnoresFakeProcInJoinedMountNamespace(t *testing.T) {
	a := newEnv(t, "sleep", "1000")
	a.spec.Root.Path = privateRootfs(t)
	a.spec.Root.Readonly = false
	caps := append(slices.Clone(a.spec.Process.Capabilities.Bounding), "CAP_SYS_ADMIN")
	a.spec.Process.Capabilities.Bounding, a.spec.Process.Capabilities.Effective, a.spec.Process.Capabilities.Permitted = caps, caps, caps
	if _, err := a.create(); err != nil {
		t.Fatalf("%v: %s", err, a.lastError())
	}
	a.mustRT("start", a.id)
	initA := strconv.Itoa(a.state().Pid)

	b := newEnv(t, "true")
	b.id = "b" + b.id[1:] // the envs of one test share id and cgroup otherwise
	b.spec.Linux.CgroupsPath = "/hostnet-test/" + b.id
	// A path the host's init would chdir to in A's mount namespace: the
	// attacker can make it exist there.
	fake := `mkdir -p ` + b.bundle + ` && mount -t tmpfs fake /proc && mkdir -p /proc/self/fd && for i in $(seq 0 64); do printf '#!/bin/sh\n/bin/touch /dev/shm/pwned\n' >/proc/self/fd/$i; chmod +x /proc/self/fd/$i; done`
	if _, err := a.rt("exec", a.id, "sh", "-c", fake); err != nil {
		t.Fatalf("set up the fake /proc: %v: %s", err, a.lastError())
	}
	for i, ns := range b.spec.Linux.Namespaces {
		if ns.Type == specs.MountNamespace {
			b.spec.Linux.Namespaces[i].Path = "/proc/" + initA + "/ns/mnt"
		}
	}
	_, err := b.create()
	t.Logf("create in A's mount namespace: %v (%s)", err, b.lastError())
	if _, serr := os.Stat("/proc/" + initA + "/root/dev/shm/pwned"); serr == nil {
		t.Fatal("create ran the other container's fake /proc/self/fd/N instead of the runtime's init")
	}
}

// Only stdio and the descriptors the caller declares (--preserve-fds, and
// systemd's LISTEN_FDS) reach the container's process: a declared number
// that the caller did not pass must not hand over whatever the runtime
// opened under it, and the created init must keep neither the runtime's
// sealed binary nor the caller's undeclared descriptors (a lock, say) open.
func TestOnlyDeclaredFdsReachProcess(t *testing.T) {
	passed, err := os.Open("/etc/hostname")
	if err != nil {
		t.Fatal(err)
	}
	defer passed.Close()
	script := "ls -l /proc/$$/fd; echo LISTEN_FDS=$LISTEN_FDS LISTEN_PID=$LISTEN_PID; true"
	openFds := func(out string) map[int]string {
		fds := map[int]string{}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 11 && f[len(f)-2] == "->" {
				if n, err := strconv.Atoi(f[len(f)-3]); err == nil && n != 10 { // busybox sh keeps fd 10
					fds[n] = f[len(f)-1]
				}
			}
		}
		return fds
	}
	// Runs the runtime with fd 3 open and the given extra environment.
	run := func(e *env, env []string, args ...string) (string, error) {
		e.writeSpec()
		argv := append([]string{"--root", e.root, "--log", e.log, "--log-format", "json"}, args...)
		cmd := exec.Command("sh", append([]string{"-c", `export LISTEN_PID=$$; exec "$0" "$@"`, runtimeBin}, argv...)...)
		cmd.Env = append(os.Environ(), env...)
		cmd.ExtraFiles = []*os.File{passed}
		out, err := cmd.Output()
		return string(out), err
	}

	t.Run("undeclared", func(t *testing.T) {
		if referenceRunc(t) {
			t.Skip("runc 1.5.2 hands the container whatever it opened under the number (the Go runtime's cgroup file)")
		}
		// fd 4 is declared but not passed: it is whatever the runtime
		// opens first.
		e := newEnv(t, "sh", "-c", script)
		out, err := run(e, nil, "run", "--preserve-fds", "2", "--bundle", e.bundle, e.id)
		if err == nil {
			for fd, target := range openFds(out) {
				if fd > 3 {
					t.Errorf("the process got fd %d -> %s, which the caller did not pass", fd, target)
				}
			}
		}
		t.Logf("--preserve-fds 2 with only fd 3 passed: %v (%s)", err, e.lastError())
		e.assertGone()
	})
	t.Run("LISTEN_FDS", func(t *testing.T) {
		e := newEnv(t, "sh", "-c", script)
		out, err := run(e, []string{"LISTEN_FDS=1"}, "run", "--bundle", e.bundle, e.id)
		if err != nil {
			t.Fatalf("%v: %s", err, e.lastError())
		}
		fds := openFds(out)
		if fds[3] != "/etc/hostname" || len(fds) != 4 {
			t.Errorf("process fds %v, want stdio and the listen fd 3 -> /etc/hostname", fds)
		}
		if !strings.Contains(out, "LISTEN_FDS=1 LISTEN_PID=1") {
			t.Errorf("process environment lacks LISTEN_FDS=1 LISTEN_PID=1: %q", out)
		}
	})
	t.Run("without close_range", func(t *testing.T) {
		// Before Linux 5.11 the descriptors are found through procfs.
		e := newEnv(t, "sh", "-c", script)
		cmd := e.runWithout("close_range")
		cmd.ExtraFiles = []*os.File{passed}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, e.lastError())
		}
		if fds := openFds(string(out)); len(fds) != 3 {
			t.Errorf("process fds %v, want stdio only", fds)
		}
	})
	t.Run("created init", func(t *testing.T) {
		if referenceRunc(t) {
			t.Skip("runc's init keeps its own descriptors")
		}
		// Four descriptors the caller has open but does not declare.
		e := newEnv(t, "true")
		e.writeSpec()
		cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "create", "--bundle", e.bundle, e.id)
		cmd.ExtraFiles = []*os.File{passed, passed, passed, passed}
		// A file, not a pipe: the created init keeps its stdio open.
		out, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			msg, _ := os.ReadFile(out.Name())
			t.Fatalf("%v: %s", err, msg)
		}
		dir := "/proc/" + strconv.Itoa(e.state().Pid) + "/fd"
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			target, _ := os.Readlink(filepath.Join(dir, ent.Name()))
			if strings.Contains(target, "memfd:") || target == "/etc/hostname" {
				t.Errorf("the created init holds fd %s -> %s", ent.Name(), target)
			}
		}
	})
}

// rro makes a bind mount read-only with everything mounted below it: the
// container must not write to the host's directory, nor to a mount inside.
func TestRecursiveReadonlyBind(t *testing.T) {
	host := t.TempDir()
	sub := filepath.Join(host, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(sub, unix.MNT_DETACH) })
	e := newEnv(t, "sh", "-c", "echo x > /mnt/top && echo wrote /mnt/top; echo x > /mnt/sub/below && echo wrote /mnt/sub/below; true")
	e.spec.Mounts = append(e.spec.Mounts, specs.Mount{Destination: "/mnt", Type: "bind", Source: host, Options: []string{"rbind", "rro"}})
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if strings.Contains(out, "wrote") {
		t.Errorf("the container wrote through an rro bind mount: %q", out)
	}
	for _, p := range []string{filepath.Join(host, "top"), filepath.Join(sub, "below")} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s was created on the host", p)
		}
	}
}
