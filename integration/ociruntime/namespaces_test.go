package ociruntime

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func withoutNamespace(s *specs.Spec, t specs.LinuxNamespaceType) {
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool { return ns.Type == t })
}

// A container may share the host's mount namespace: its mounts are then the
// host's, under its root, and delete must take them all away.
func TestHostMountNamespace(t *testing.T) {
	rootfs := filepath.Join(t.TempDir(), "rootfs")
	if err := makeRootfs(rootfs); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "sh", "-c", "test -e /proc/self/status && echo ok")
	withoutNamespace(e.spec, specs.MountNamespace)
	e.spec.Root = &specs.Root{Path: rootfs}
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	if strings.TrimSpace(out) != "ok" {
		t.Errorf("container output %q, want ok", out)
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), rootfs) {
		t.Errorf("mounts under %s left on the host after delete", rootfs)
	}
	e.assertGone()
}

// withUserNamespace gives the container a user namespace mapping its ids
// 0-65535 to the host's 100000-165535.
func withUserNamespace(t *testing.T, e *env) {
	t.Helper()
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// sysfs and cgroups of the host cannot be mounted from a user namespace
	// that does not own the network and cgroup namespaces they describe.
	e.spec.Mounts = slices.DeleteFunc(e.spec.Mounts, func(m specs.Mount) bool {
		return m.Destination == "/sys/fs/cgroup"
	})
	// The mapped root is an unprivileged uid on the host: it must be able
	// to reach the root filesystem. The bundle stays in a 0700 directory:
	// the init inherits its working directory there, as runc's does.
	for dir := rootfsDir; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Dir(e.bundle), 0o700); err != nil {
		t.Fatal(err)
	}
}

// A user namespace with mappings: the process is root inside, an unmapped
// uid outside, and the init keeps the capabilities it needs to set up.
func TestUserNamespace(t *testing.T) {
	e := newEnv(t, "sh", "-c", "id -u; cat /proc/self/uid_map")
	withUserNamespace(t, e)
	out, err := e.runOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	fields := strings.Fields(out)
	if len(fields) != 4 || fields[0] != "0" || fields[1] != "0" || fields[2] != "100000" || fields[3] != "65536" {
		t.Errorf("id and uid_map in the container: %q, want uid 0 mapped to 100000", out)
	}
	e.assertGone()
}

// A relative cgroupsPath is placed under the runtime's own cgroup in each
// hierarchy, as runc does, and found again by later commands.
func TestRelativeCgroupPath(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	rel := "hostnet-test-rel/" + e.id
	e.spec.Linux.CgroupsPath = rel
	t.Cleanup(func() {
		for _, d := range cgroupDirs("hostnet-test-rel") {
			_ = os.Remove(d)
		}
	})
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	// v1: under the caller's cgroup (in the memory hierarchy here); v2:
	// under its parent, as runc places it, since the caller's own cgroup
	// has processes and so cannot give a child controllers.
	var dir string
	for _, line := range strings.Split(string(own), "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch {
		case len(parts) != 3:
		case parts[1] == "memory":
			dir = filepath.Join("/sys/fs/cgroup/memory", parts[2], rel)
		case parts[0] == "0" && parts[1] == "" && dir == "":
			if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
				dir = filepath.Join("/sys/fs/cgroup", filepath.Dir(parts[2]), rel)
			}
		}
	}
	if dir == "" {
		t.Skip("no cgroup v1 memory hierarchy and no cgroup v2")
	}
	t.Cleanup(func() { _ = os.Remove(filepath.Dir(dir)) })
	procs, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
	if err != nil || strings.TrimSpace(string(procs)) == "" {
		t.Fatalf("container not in %s: %v %q", dir, err, procs)
	}
	out, err := exec.Command(runtimeBin, "--root", e.root, "ps", "--format", "json", e.id).Output()
	if err != nil || !strings.Contains(string(out), strings.TrimSpace(string(procs))) {
		t.Errorf("ps = %s (%v), want the init %s", out, err, procs)
	}
	e.mustRT("delete", "--force", e.id)
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("cgroup %s left behind: %v", dir, err)
	}
}

// exec joins the container's user namespace too (from a raw fork: Go
// cannot setns into a user namespace), as the namespace's root unless the
// process asks for another user, with the caps of the spec and nothing
// more.
func TestExecUserNamespace(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	withUserNamespace(t, e)
	if _, err := e.create(); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	e.mustRT("start", e.id)
	init := e.state().Pid
	wantNS, _ := os.Readlink("/proc/" + strconv.Itoa(init) + "/ns/user")

	out, err := e.rt("exec", e.id, "sh", "-c", "readlink /proc/self/ns/user; id -u; id -g; cat /proc/self/uid_map; grep CapEff /proc/self/status")
	if err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	f := strings.Fields(out)
	if len(f) < 8 || f[0] != wantNS || f[1] != "0" || f[2] != "0" || f[4] != "100000" {
		t.Fatalf("exec'd process: %q, want user namespace %s, uid and gid 0, mapped to 100000", out, wantNS)
	}
	initCaps, _ := os.ReadFile("/proc/" + strconv.Itoa(init) + "/status")
	if want := capEff(string(initCaps)); f[len(f)-1] != want {
		t.Errorf("exec'd CapEff %s, want the init's %s", f[len(f)-1], want)
	}

	// Another user, and the host sees it as the mapped uid.
	proc := filepath.Join(t.TempDir(), "process.json")
	p := *e.spec.Process
	p.User = specs.User{UID: 1000, GID: 1000}
	p.Args = []string{"sh", "-c", "id -u; sleep 1000"}
	data, _ := json.Marshal(p)
	if err := os.WriteFile(proc, data, 0o644); err != nil {
		t.Fatal(err)
	}
	pidFile := filepath.Join(t.TempDir(), "exec.pid")
	if _, err := e.rt("exec", "--detach", "--pid-file", pidFile, "--process", proc, e.id); err != nil {
		t.Fatalf("%v: %s", err, e.lastError())
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/" + string(raw) + "/status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(status), "\nUid:\t101000\t101000\t101000\t101000\n") {
		t.Errorf("exec'd process as uid 1000: host status\n%s\nwant host uid 101000", status)
	}
	e.mustRT("delete", "--force", e.id)
	e.assertGone()
}

func capEff(status string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// startUserNamespaceHolder runs a container with a user namespace of its
// own (withUserNamespace's mappings) and returns its init's pid, for
// other containers to join its namespaces as a pod's containers join the
// sandbox's.
func startUserNamespaceHolder(t *testing.T) (*env, int) {
	t.Helper()
	holder := newEnv(t, "sleep", "1000")
	holder.id += "-holder"
	holder.spec.Linux.CgroupsPath += "-holder"
	withUserNamespace(t, holder)
	if _, err := holder.create(); err != nil {
		t.Fatalf("%v: %s", err, holder.lastError())
	}
	holder.mustRT("start", holder.id)
	return holder, holder.state().Pid
}

// nsOwner is the inode of the user namespace that owns the namespace file
// at path (ioctl NS_GET_USERNS).
func nsOwner(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		t.Fatalf("NS_GET_USERNS %s: %v", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func nsInode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// pinNamespace bind-mounts the namespace file at path onto a file of the
// test's, as containerd's CRI pins a pod's user namespace: a path that is
// not /proc/<pid>/ns/user.
func pinNamespace(t *testing.T, path string) string {
	t.Helper()
	pin := filepath.Join(t.TempDir(), "userns")
	if err := os.WriteFile(pin, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(path, pin, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = unix.Unmount(pin, unix.MNT_DETACH) })
	return pin
}

// Issue 13 item 1: a container joins a user namespace by path at create,
// as a pod's app containers join the sandbox's (containerd repeats the
// namespace's mappings in the spec; a path alone is enough). Its new
// namespaces belong to the joined user namespace, not to the host's, so
// that its root can mount, and a new PID namespace makes it pid 1.
// Refused by hostnet-runc before ("joining an existing user namespace by
// path is not supported"); passes with HOSTNET_RUNC=runc 1.5.2 too.
func TestJoinUserNamespaceAtCreate(t *testing.T) {
	holder, holderPid := startUserNamespaceHolder(t)
	holderNS := "/proc/" + strconv.Itoa(holderPid) + "/ns/"
	userns := nsInode(t, holderNS+"user")
	for _, tc := range []struct {
		name    string
		path    func() string
		maps    bool // repeat the namespace's mappings in the spec
		joinPid bool // join the holder's PID namespace instead of a new one
	}{
		{name: "new pid namespace", path: func() string { return holderNS + "user" }, maps: true},
		{name: "pinned path without mappings", path: func() string { return pinNamespace(t, holderNS+"user") }},
		{name: "joined pid namespace", path: func() string { return holderNS + "user" }, maps: true, joinPid: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, "sh", "-c", "echo pid $$; id -u; cat /proc/self/uid_map; grep -c . /proc/mounts; exec sleep 1000")
			withUserNamespace(t, e)
			for i, ns := range e.spec.Linux.Namespaces {
				switch {
				case ns.Type == specs.UserNamespace:
					e.spec.Linux.Namespaces[i].Path = tc.path()
				case ns.Type == specs.PIDNamespace && tc.joinPid:
					e.spec.Linux.Namespaces[i].Path = holderNS + "pid"
				}
			}
			if !tc.maps {
				e.spec.Linux.UIDMappings, e.spec.Linux.GIDMappings = nil, nil
			}
			if _, err := e.create(); err != nil {
				t.Fatalf("%v: %s", err, e.lastError())
			}
			pid := e.state().Pid
			e.mustRT("start", e.id)
			if got := nsInode(t, "/proc/"+strconv.Itoa(pid)+"/ns/user"); got != userns {
				t.Errorf("container's user namespace %d, want the holder's %d", got, userns)
			}
			for _, ns := range []string{"mnt", "uts", "ipc", "net", "pid"} {
				if tc.joinPid && ns == "pid" {
					if got, want := nsInode(t, "/proc/"+strconv.Itoa(pid)+"/ns/pid"), nsInode(t, holderNS+"pid"); got != want {
						t.Errorf("pid namespace %d, want the holder's %d", got, want)
					}
					continue
				}
				if owner := nsOwner(t, "/proc/"+strconv.Itoa(pid)+"/ns/"+ns); owner != userns {
					t.Errorf("the container's new %s namespace belongs to user namespace %d, want the joined %d", ns, owner, userns)
				}
			}
			got, err := e.rt("exec", e.id, "sh", "-c", "id -u; readlink /proc/self/ns/user")
			if err != nil {
				t.Fatalf("exec: %v: %s", err, e.lastError())
			}
			if f := strings.Fields(got); len(f) != 2 || f[0] != "0" || f[1] != fmt.Sprintf("user:[%d]", userns) {
				t.Errorf("exec'd process: %q, want uid 0 in user:[%d]", got, userns)
			}
			status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
			if err != nil {
				t.Fatal(err)
			}
			wantPid := "NSpid:\t" + strconv.Itoa(pid) + "\t1\n"
			if tc.joinPid {
				wantPid = "NSpid:\t" + strconv.Itoa(pid) + "\t"
			}
			if !strings.Contains(string(status), wantPid) || !strings.Contains(string(status), "\nUid:\t100000\t100000\t100000\t100000\n") {
				t.Errorf("host status of the init:\n%s\nwant %q and host uid 100000", status, wantPid)
			}
			e.mustRT("delete", "--force", e.id)
			e.assertGone()
		})
	}
	holder.mustRT("delete", "--force", holder.id)
	holder.assertGone()
}

// A spec that joins a user namespace and gives other mappings than the
// namespace's is refused, as runc refuses it, and leaves nothing behind.
func TestJoinUserNamespaceWrongMappings(t *testing.T) {
	holder, holderPid := startUserNamespaceHolder(t)
	e := newEnv(t, "true")
	withUserNamespace(t, e)
	for i, ns := range e.spec.Linux.Namespaces {
		if ns.Type == specs.UserNamespace {
			e.spec.Linux.Namespaces[i].Path = "/proc/" + strconv.Itoa(holderPid) + "/ns/user"
		}
	}
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
	_, err := e.create()
	if err == nil {
		t.Fatal("create with mappings other than the joined namespace's succeeded")
	}
	if !strings.Contains(err.Error(), "non-matching mapping") {
		t.Errorf("create: %v; want runc's \"non-matching mapping\" error", err)
	}
	e.assertGone()
	holder.mustRT("delete", "--force", holder.id)
	holder.assertGone()
}
