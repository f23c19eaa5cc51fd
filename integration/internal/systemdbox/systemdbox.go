// Package systemdbox boots a real systemd as the init of a throwaway
// sandbox (its own mount, pid, cgroup and uts namespaces, a cgroup subtree
// of its own in every hierarchy), so that the systemd cgroup driver can be
// tested against systemd on hosts whose init is something else. Commands run
// inside through nsenter; everything is killed and removed at test cleanup.
package systemdbox

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

//go:embed boot.sh
var bootScript []byte

// Box is a running sandbox.
type Box struct {
	t      *testing.T
	dir    string
	cgroup string // the sandbox's cgroup, below each hierarchy's root
	boot   *exec.Cmd
	pid    int // systemd, in the host's pid namespace
	// commands is, on cgroup v2, a leaf cgroup inside the sandbox's where
	// Command's processes start: inside a cgroup namespace, systemd can
	// only move a process that is in a cgroup of that namespace (the
	// kernel answers ENOENT for one outside).
	commands *os.File
}

// Start boots systemd with the bind directories visible at their own paths
// inside, and waits until it runs. The test is skipped when systemd is not
// installed.
func Start(t *testing.T, binds ...string) *Box {
	t.Helper()
	if _, err := os.Stat("/usr/lib/systemd/systemd"); err != nil {
		t.Skip("systemd is not installed: apt-get install systemd")
	}
	for _, tool := range []string{"unshare", "nsenter", "chroot"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is needed: %v", tool, err)
		}
	}
	dir, err := os.MkdirTemp("", "hostnet-systemdbox-")
	if err != nil {
		t.Fatal(err)
	}
	b := &Box{t: t, dir: dir, cgroup: fmt.Sprintf("hostnet-systemdbox-%d-%d", os.Getpid(), time.Now().UnixNano())}
	t.Cleanup(b.stop)
	if err := b.makeCgroup(); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "boot.sh")
	if err := os.WriteFile(script, bootScript, 0o755); err != nil {
		t.Fatal(err)
	}
	console, err := os.Create(filepath.Join(dir, "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close()
	b.boot = exec.Command(script, append([]string{"outer", dir, b.cgroup}, binds...)...)
	b.boot.Stdout, b.boot.Stderr = console, console
	b.boot.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := b.boot.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.waitRunning(30 * time.Second); err != nil {
		log, _ := os.ReadFile(console.Name())
		t.Fatalf("systemd sandbox: %v\nconsole:\n%s", err, log)
	}
	return b
}

// makeCgroup creates the sandbox's cgroup in every hierarchy; cpuset needs
// its cpus and mems filled in before a process may join.
func (b *Box) makeCgroup() error {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dir := filepath.Join("/sys/fs/cgroup", b.cgroup, "hostnet-commands")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		f, err := os.Open(dir)
		if err != nil {
			return err
		}
		b.commands = f
		return nil
	}
	for _, dir := range b.cgroupDirs() {
		if err := os.Mkdir(dir, 0o755); err != nil {
			return err
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(filepath.Dir(dir), f)); err == nil {
				if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
					return fmt.Errorf("init %s: %w", f, err)
				}
			}
		}
	}
	return nil
}

// cgroupDirs is the sandbox's cgroup directory in every hierarchy.
func (b *Box) cgroupDirs() []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{filepath.Join("/sys/fs/cgroup", b.cgroup)}
	}
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, e := range entries {
		if fi, err := os.Lstat(filepath.Join("/sys/fs/cgroup", e.Name())); err == nil && fi.IsDir() {
			dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name(), b.cgroup))
		}
	}
	return dirs
}

// waitRunning finds systemd (unshare's child) and waits until it reports
// the system as running.
func (b *Box) waitRunning(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if b.pid == 0 {
			b.pid = b.findInit()
			if b.pid != 0 && b.commands != nil {
				// unshare made the cgroup namespace in the sandbox's
				// cgroup and stays there: out of it, or systemd cannot
				// enable controllers in it (a cgroup v2 cgroup with
				// processes gives its children none).
				procs := filepath.Join(b.commands.Name(), "cgroup.procs")
				if err := os.WriteFile(procs, []byte(strconv.Itoa(b.boot.Process.Pid)), 0); err != nil {
					return fmt.Errorf("move unshare out of the sandbox's cgroup: %w", err)
				}
			}
		}
		if b.pid != 0 {
			out, err := b.Command("systemctl", "is-system-running").CombinedOutput()
			last = strings.TrimSpace(string(out))
			if err == nil && last == "running" {
				return nil
			}
		}
		if b.boot.ProcessState != nil {
			return errors.New("boot script exited")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("systemd not running after %s (last state %q)", timeout, last)
}

// findInit walks from the boot script (which execs into unshare) to the
// process unshare forked, once that has exec'd systemd.
func (b *Box) findInit() int {
	children, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", b.boot.Process.Pid, b.boot.Process.Pid))
	if err != nil {
		return 0
	}
	for _, f := range strings.Fields(string(children)) {
		pid, _ := strconv.Atoi(f)
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && strings.HasSuffix(exe, "/systemd") {
			return pid
		}
	}
	return 0
}

// Command runs name inside the sandbox: its mount, pid and cgroup
// namespaces and its root.
func (b *Box) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"-t", strconv.Itoa(b.pid), "-m", "-p", "-C", "-r", "-w", "--", name}, args...)...)
	if b.commands != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{UseCgroupFD: true, CgroupFD: int(b.commands.Fd())}
	}
	return cmd
}

// Run runs a command inside and returns its trimmed output, failing the
// test on error.
func (b *Box) Run(name string, args ...string) string {
	b.t.Helper()
	out, err := b.Command(name, args...).CombinedOutput()
	if err != nil {
		b.t.Fatalf("in systemd sandbox: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// stop kills the sandbox's pid namespace by killing its init, then removes
// its cgroups, deepest first, and its directory.
func (b *Box) stop() {
	if b.pid != 0 {
		_ = syscall.Kill(b.pid, syscall.SIGKILL)
	}
	if b.boot != nil && b.boot.Process != nil {
		_ = b.boot.Process.Kill()
		_ = b.boot.Wait()
	}
	if b.commands != nil {
		b.commands.Close()
	}
	for _, dir := range b.cgroupDirs() {
		if err := removeTree(dir); err != nil {
			b.t.Errorf("remove sandbox cgroup: %v", err)
		}
	}
	_ = os.RemoveAll(b.dir)
}

// removeTree removes a cgroup directory and its children; it retries while
// the killed processes are still leaving.
func removeTree(dir string) error {
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err = removeOnce(dir); err == nil || errors.Is(err, os.ErrNotExist) {
			return nil
		}
	}
	return err
}

func removeOnce(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeOnce(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return os.Remove(dir)
}

// Show reads a unit's properties with systemctl show.
func (b *Box) Show(unit string, props ...string) map[string]string {
	b.t.Helper()
	args := []string{"show", unit}
	for _, p := range props {
		args = append(args, "-p", p)
	}
	out := map[string]string{}
	for _, line := range strings.Split(b.Run("systemctl", args...), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = v
		}
	}
	return out
}

// CheckCgroup fails the test unless pid (in the sandbox's pid namespace)
// is in cgroup path in every hierarchy.
func (b *Box) CheckCgroup(pid int, path string) {
	b.t.Helper()
	for _, line := range strings.Split(b.Run("cat", "/proc/"+strconv.Itoa(pid)+"/cgroup"), "\n") {
		if !strings.HasSuffix(line, ":"+path) {
			b.t.Errorf("pid %d: cgroup line %q, want every hierarchy at %s", pid, line, path)
		}
	}
}

// LeftCgroups lists the directories of cgroup path that remain in any
// hierarchy inside the sandbox.
func (b *Box) LeftCgroups(path string) string {
	b.t.Helper()
	return b.Run("sh", "-c", "ls -d /sys/fs/cgroup/*"+path+" /sys/fs/cgroup"+path+" 2>/dev/null || true")
}
