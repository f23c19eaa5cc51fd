package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// unifiedRoot is where this host's cgroup v2 hierarchy is mounted: the
// device filter is an eBPF program attached there, on hybrid hosts too.
func unifiedRoot(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, dir := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			return dir
		}
	}
	t.Skip("no cgroup v2 hierarchy is mounted")
	return ""
}

// devTest is a cgroup v2 directory of the test's own and device nodes to
// try from a process inside it.
type devTest struct {
	t     *testing.T
	cg    string
	nodes string
}

func newDevTest(t *testing.T) *devTest {
	cg := filepath.Join(unifiedRoot(t), fmt.Sprintf("hostnet-devtest-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")))
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(cg); err != nil {
			t.Errorf("remove test cgroup: %v", err)
		}
	})
	d := &devTest{t: t, cg: cg, nodes: t.TempDir()}
	// A char device that exists everywhere and is not a default one, and
	// a block device number of the range kept for local use, which no
	// driver serves (opening it gives ENXIO where the cgroup allows it,
	// EPERM where it does not; a loop device number would create one).
	for name, dev := range map[string]struct {
		mode         uint32
		major, minor uint32
	}{
		"kmsg": {unix.S_IFCHR, 1, 11},
		"blk":  {unix.S_IFBLK, 60, 250},
		"null": {unix.S_IFCHR, 1, 3},
	} {
		if err := unix.Mknod(filepath.Join(d.nodes, name), dev.mode|0o600, int(unix.Mkdev(dev.major, dev.minor))); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// set attaches the filter for the spec's rules plus runc's defaults, as
// New does.
func (d *devTest) set(rules ...specs.LinuxDeviceCgroup) {
	d.t.Helper()
	if err := setDeviceFilter(d.cg, withDefaultDevices(&specs.LinuxResources{Devices: rules}).Devices); err != nil {
		d.t.Fatal(err)
	}
}

// try runs a shell command line in the test cgroup and returns its
// output, with "EPERM" for an error that the device cgroup caused.
func (d *devTest) try(script string) string {
	d.t.Helper()
	fd, err := unix.Open(d.cg, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	defer unix.Close(fd)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Dir = d.nodes
	cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: fd}
	out, err := cmd.CombinedOutput()
	s := strings.TrimSpace(string(out))
	if strings.Contains(s, "Operation not permitted") {
		return "EPERM"
	}
	if err != nil && s == "" {
		return err.Error()
	}
	return s
}

// The outcomes the tests expect from a command line.
const (
	ok     = "ok"
	denied = "EPERM"
	enxio  = "No such device or address"
)

func (d *devTest) expect(script, want string) {
	d.t.Helper()
	got := d.try(script + " && echo ok")
	if want == enxio && strings.Contains(got, enxio) {
		return
	}
	if got != want {
		d.t.Errorf("%s: got %q, want %q", script, got, want)
	}
}

func i64(v int64) *int64 { return &v }

func devRule(allow bool, typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
	return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
}

var denyAll = devRule(false, "a", nil, nil, "rwm")

// A container whose spec denies every device (containerd's and runc's
// default) gets runc's default devices and nothing else; mknod is allowed,
// opening what it made is not.
func TestDeviceFilterDefaults(t *testing.T) {
	d := newDevTest(t)
	d.set(denyAll)
	d.expect(": <>null", ok)
	d.expect("head -c1 /dev/zero >/dev/null", ok)
	d.expect(": <kmsg", denied)
	d.expect(": <blk", denied)
	d.expect("mknod made b 60 251 && rm made", ok)
	// A spec cannot deny the defaults: runc appends them after its rules.
	d.set(denyAll, devRule(false, "c", i64(1), i64(3), "rwm"))
	d.expect(": <>null", ok)
}

// Access is granted per rule: a rule that allows reading does not allow
// opening read-write (containerd/cgroups/v3's filter allows it).
func TestDeviceFilterPartialAccess(t *testing.T) {
	d := newDevTest(t)
	d.set(denyAll, devRule(true, "c", i64(1), i64(11), "r"))
	d.expect(": <kmsg", ok)
	d.expect(": <>kmsg", denied)
	d.expect(": >kmsg", denied)
}

// Rules apply in order: a deny after an allow takes the access back, an
// allow after a deny grants it, and a whole major can be allowed.
func TestDeviceFilterOrder(t *testing.T) {
	d := newDevTest(t)
	d.set(denyAll, devRule(true, "c", i64(1), i64(11), "rwm"), devRule(false, "c", i64(1), i64(11), "rwm"))
	d.expect(": <kmsg", denied)
	d.set(denyAll, devRule(false, "c", i64(1), i64(11), "rwm"), devRule(true, "c", i64(1), i64(11), "rw"))
	d.expect(": <>kmsg", ok)
	d.set(denyAll, devRule(true, "b", i64(60), nil, "r"))
	d.expect(": <blk", enxio)
	d.expect(": <>blk", denied)
	// Allowing everything, then denying one device, leaves the others.
	d.set(devRule(true, "a", nil, nil, "rwm"), devRule(false, "b", i64(60), i64(250), "rwm"))
	d.expect(": <blk", denied)
	d.expect(": <kmsg", ok)
}

// Setting the filter again replaces the program instead of adding one: a
// device allowed only by the new rules becomes usable, and one allowed
// only by the old rules does not stay so.
func TestDeviceFilterReplaced(t *testing.T) {
	d := newDevTest(t)
	d.set(denyAll)
	d.expect(": <kmsg", denied)
	d.set(denyAll, devRule(true, "c", i64(1), i64(11), "r"))
	d.expect(": <kmsg", ok)
	d.set(denyAll)
	d.expect(": <kmsg", denied)
	if n := attachedDevicePrograms(t, d.cg); n != 1 {
		t.Errorf("%d device programs attached, want 1", n)
	}
}

func attachedDevicePrograms(t *testing.T, dir string) int {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := link.QueryPrograms(link.QueryOptions{Target: int(f.Fd()), Attach: ebpf.AttachCGroupDevice})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Programs)
}

// A spec's bad rules fail the create with runc's error, before anything
// is made.
func TestDeviceRulesChecked(t *testing.T) {
	for _, r := range []specs.LinuxDeviceCgroup{
		devRule(true, "c", i64(1), i64(3), ""),
		devRule(true, "x", nil, nil, "rwm"),
	} {
		if err := checkDevices([]specs.LinuxDeviceCgroup{r}); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	// runc keeps r, w and m of an access and drops the rest.
	if err := checkDevices([]specs.LinuxDeviceCgroup{devRule(true, "c", nil, nil, "rwa")}); err != nil {
		t.Errorf("access rwa: %v", err)
	}
	if err := checkDevices(withDefaultDevices(nil).Devices); err != nil {
		t.Errorf("default rules: %v", err)
	}
}

// On a cgroup v2 host, New attaches the filter with the spec's rules and
// runc's defaults: exactly one program, which refuses what the spec denies.
func TestNewV2AttachesDeviceFilter(t *testing.T) {
	if unifiedRoot(t) != "/sys/fs/cgroup" {
		t.Skip("needs a cgroup v2 host")
	}
	path := fmt.Sprintf("/hostnet-devtest-new-%d", os.Getpid())
	m, err := New(Paths{"": path}, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{denyAll}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Delete(); err != nil {
			t.Errorf("delete: %v", err)
		}
	})
	dir := filepath.Join("/sys/fs/cgroup", path)
	if n := attachedDevicePrograms(t, dir); n != 1 {
		t.Fatalf("%d device programs attached, want 1", n)
	}
	d := &devTest{t: t, cg: dir, nodes: t.TempDir()}
	if err := unix.Mknod(filepath.Join(d.nodes, "kmsg"), unix.S_IFCHR|0o600, int(unix.Mkdev(1, 11))); err != nil {
		t.Fatal(err)
	}
	d.expect(": <kmsg", denied)
	d.expect(": </dev/null", ok)
}
