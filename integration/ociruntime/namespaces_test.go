package ociruntime

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
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

// A user namespace with mappings: the process is root inside, an unmapped
// uid outside, and the init keeps the capabilities it needs to set up.
func TestUserNamespace(t *testing.T) {
	e := newEnv(t, "sh", "-c", "id -u; cat /proc/self/uid_map")
	e.spec.Linux.Namespaces = append(e.spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	e.spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	e.spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// sysfs and cgroups of the host cannot be mounted from a user namespace
	// that does not own the network and cgroup namespaces they describe.
	e.spec.Mounts = slices.DeleteFunc(e.spec.Mounts, func(m specs.Mount) bool {
		return m.Destination == "/sys/fs/cgroup"
	})
	// The mapped root is an unprivileged uid on the host: it must be able
	// to reach the bundle and the root filesystem.
	for _, leaf := range []string{e.bundle, rootfsDir} {
		for dir := leaf; dir != os.TempDir() && dir != "/"; dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
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
	var memParent string
	for _, line := range strings.Split(string(own), "\n") {
		if parts := strings.SplitN(line, ":", 3); len(parts) == 3 && parts[1] == "memory" {
			memParent = parts[2]
		}
	}
	if memParent == "" {
		t.Skip("no cgroup v1 memory hierarchy")
	}
	dir := filepath.Join("/sys/fs/cgroup/memory", memParent, rel)
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
