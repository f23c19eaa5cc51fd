package ociruntime

import (
	"fmt"
	"os"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// requireV2 skips a test of cgroup v2 behaviour on other hosts (the v2 lane,
// integration/cgroup2, runs them in a cgroup v2 guest).
func requireV2(t *testing.T) {
	t.Helper()
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err != nil {
		t.Skip("needs a cgroup v2 host (make test-cgroup2)")
	}
}

// rootDisk is the block device the host's root filesystem is on.
func rootDisk(t *testing.T) (major, minor uint32) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	major, minor = unix.Major(st.Dev), unix.Minor(st.Dev)
	if major == 0 {
		t.Skip("the root filesystem is not on a block device")
	}
	return major, minor
}

func withCaps(s *specs.Spec, caps ...string) {
	c := s.Process.Capabilities
	c.Bounding = append(c.Bounding, caps...)
	c.Effective = append(c.Effective, caps...)
	c.Permitted = append(c.Permitted, caps...)
}

func ptr[T any](v T) *T { return &v }

// try runs a shell command line in the running container and says what
// happened: "ok", "EPERM" where the device cgroup refused, else the output.
func (e *env) try(script string) string {
	e.t.Helper()
	out, err := e.rt("exec", e.id, "sh", "-c", "{ "+script+"; } 2>&1 && echo ok")
	s := strings.TrimSpace(out)
	if strings.Contains(s, "Operation not permitted") {
		return "EPERM"
	}
	if err != nil {
		return fmt.Sprintf("%s (%v)", s, err)
	}
	return s
}

func (e *env) expect(script, want string) {
	e.t.Helper()
	if got := e.try(script); got != want {
		e.t.Errorf("%s: got %q, want %q", script, got, want)
	}
}

// With the spec's deny-all device rule and CAP_MKNOD, a container may make
// a node for the host's disk but not open it: on cgroup v2 the device
// cgroup is an eBPF program that the runtime must attach (issue 11: none
// was, and the container could read the disk). runc's default devices stay
// usable, rules apply in order, and `update` leaves the filter as it is, as
// runc's does.
func TestCgroupV2DeviceFilter(t *testing.T) {
	requireV2(t)
	major, minor := rootDisk(t)
	// The container's /dev is its own tmpfs; its root is read-only.
	node := fmt.Sprintf("rm -f /dev/hostdisk && mknod /dev/hostdisk b %d %d", major, minor)
	read := node + " && head -c 512 /dev/hostdisk | wc -c | grep -qx 512"
	readWrite := node + " && : <>/dev/hostdisk"
	disk := func(allow bool, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: "b", Major: ptr(int64(major)), Minor: ptr(int64(minor)), Access: access}
	}
	start := func(t *testing.T, rules ...specs.LinuxDeviceCgroup) *env {
		e := newEnv(t, "sleep", "1000")
		withCaps(e.spec, "CAP_MKNOD")
		e.spec.Linux.Resources.Devices = append(e.spec.Linux.Resources.Devices, rules...)
		if _, err := e.create(); err != nil {
			t.Fatal(err)
		}
		e.mustRT("start", e.id)
		return e
	}
	t.Run("deny-all", func(t *testing.T) {
		e := start(t)
		e.expect(read, "EPERM")
		e.expect("echo x >/dev/null && head -c 1 /dev/zero | wc -c | grep -qx 1 && : </dev/urandom", "ok")
		e.expect("rm -f /dev/null2 && mknod /dev/null2 c 1 3 && echo x >/dev/null2", "ok")
		// A client that sends the devices back in an update (containerd
		// sends the whole resources) does not re-open them.
		e.writeUpdate(`{"devices":[{"allow":true,"access":"rwm"}]}`)
		e.expect(read, "EPERM")
	})
	t.Run("read-only-allowed", func(t *testing.T) {
		e := start(t, disk(true, "r"))
		e.expect(read, "ok")
		e.expect(readWrite, "EPERM")
	})
	t.Run("deny-after-allow", func(t *testing.T) {
		e := start(t, disk(true, "rwm"), disk(false, "r"))
		e.expect(read, "EPERM")
	})
	t.Run("allow-all-but-disk", func(t *testing.T) {
		e := start(t, specs.LinuxDeviceCgroup{Allow: true, Access: "rwm"}, disk(false, "rw"))
		e.expect(read, "EPERM")
		e.expect(": </dev/null", "ok")
	})
}

// writeUpdate runs `update --resources` with a JSON document, as the shims
// do.
func (e *env) writeUpdate(resources string) {
	e.t.Helper()
	f := e.t.TempDir() + "/resources.json"
	if err := os.WriteFile(f, []byte(resources), 0o644); err != nil {
		e.t.Fatal(err)
	}
	e.mustRT("update", "--resources", f, e.id)
}
