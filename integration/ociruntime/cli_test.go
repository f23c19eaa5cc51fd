package ociruntime

import (
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The tests of runc's command line that clients script against (issue 12
// items 8, 9 and 14). Each passes with HOSTNET_RUNC=runc 1.5.2 too.

// status is the runtime's exit status for err from e.rt.
func status(t *testing.T, err error) int {
	t.Helper()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

// running creates and starts a container running sleep.
func running(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	e.mustRT("start", e.id)
	return e
}

// Issue 12 item 8: under umask 022 a container whose user is not root
// opens the exec fifo and runs. hostnet-runc made the fifo 0600 and the
// init died: "open exec fifo: permission denied".
func TestNonRootUserUnderUmask(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	e := newEnv(t, "id", "-u")
	e.spec.Process.User = specs.User{UID: 1000, GID: 1000}
	out, err := e.runOutput()
	if err != nil || strings.TrimSpace(out) != "1000" {
		t.Fatalf("run as uid 1000 = %q, %v (log: %v)", out, err, e.logged("error"))
	}
	e.assertGone()
}

// Issue 12 item 9: flags after the container id are parsed, as runc's are;
// an unknown one is refused; after "--" nothing is a flag. hostnet-runc
// ignored them: `update ID --cpu-period 900000` returned 0, changing nothing.
func TestFlagsAfterContainerID(t *testing.T) {
	e := running(t)
	e.mustRT("update", e.id, "--cpu-period", "900000")
	var period string
	for _, dir := range cgroupDirs(e.spec.Linux.CgroupsPath) {
		if data, err := os.ReadFile(filepath.Join(dir, "cpu.max")); err == nil {
			period = strings.Fields(string(data))[1]
		} else if data, err := os.ReadFile(filepath.Join(dir, "cpu.cfs_period_us")); err == nil {
			period = strings.TrimSpace(string(data))
		}
	}
	if period != "900000" {
		t.Errorf("CFS period after `update ID --cpu-period 900000` = %q, want 900000", period)
	}
	if _, err := e.rt("update", e.id, "--no-such-flag", "1"); status(t, err) == 0 {
		t.Error("update with an unknown flag after the id succeeded")
	}
	if _, err := e.rt("kill", e.id, "--", "--all"); status(t, err) == 0 {
		t.Error("kill ID -- --all took --all as a flag (or as a signal)")
	}
	// exec: what follows the command is the command's.
	if out := e.mustRT("exec", e.id, "echo", "-n", "--cwd", "x"); out != "--cwd x" {
		t.Errorf("exec ID echo -n --cwd x printed %q", out)
	}
}

// Issue 12 item 14: -h and --help on every command print its help and
// exit 0, as runc's do.
func TestHelpOnEveryCommand(t *testing.T) {
	e := newEnv(t)
	for _, cmd := range []string{"checkpoint", "create", "delete", "events", "exec", "features", "kill", "list",
		"pause", "ps", "restore", "resume", "run", "spec", "start", "state", "update"} {
		for _, flag := range []string{"--help", "-h"} {
			out, err := e.rt(cmd, flag)
			if err != nil {
				t.Errorf("%s %s: %v", cmd, flag, err)
				continue
			}
			if !strings.Contains(out, "USAGE:") || !strings.Contains(out, " "+cmd+" ") {
				t.Errorf("%s %s printed no help for %s:\n%s", cmd, flag, cmd, out)
			}
		}
	}
	if out := e.mustRT("help", "kill"); !strings.Contains(out, "USAGE:") || !strings.Contains(out, "kill") {
		t.Errorf("help kill printed\n%s", out)
	}
}

// Issue 12 item 14: ps prints ps(1)'s table, header first, for the
// container's processes only; options after the id are ps's.
func TestPsTable(t *testing.T) {
	e := running(t)
	pid := strconv.Itoa(e.state().Pid)
	out := e.mustRT("ps", e.id)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(strings.Join(strings.Fields(lines[0]), " "), "UID PID PPID") ||
		!strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "root "+pid+" ") || !strings.HasSuffix(lines[1], "sleep 1000") {
		t.Errorf("ps %s printed\n%s\nwant ps -ef's header and the init %s", e.id, out, pid)
	}
	out = e.mustRT("ps", e.id, "-o", "pid,comm")
	if fields := strings.Fields(out); !slices.Equal(fields, []string{"PID", "COMMAND", pid, "sleep"}) {
		t.Errorf("ps %s -o pid,comm printed %q", e.id, out)
	}
	var pids []int
	if err := json.Unmarshal([]byte(e.mustRT("ps", "--format", "json", e.id)), &pids); err != nil || len(pids) != 1 || strconv.Itoa(pids[0]) != pid {
		t.Errorf("ps --format json = %v, %v; want [%s]", pids, err, pid)
	}
}

// Issue 12 item 14: --debug writes debug lines to the log.
func TestDebugLogs(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	e.global = []string{"--debug"}
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	if len(e.logged("debug")) == 0 {
		t.Error("create --debug logged no debug line")
	}
}

// Issue 12 item 14: exec's own failures exit 255, so that they are not
// taken for the process's exit status 1, which exec passes on.
func TestExecRuntimeErrorStatus(t *testing.T) {
	e := running(t)
	for _, args := range [][]string{
		{"exec", e.id, "/no/such/binary"},
		{"exec", e.id + "-none", "true"},
		{"exec", e.id},
	} {
		if _, err := e.rt(args...); status(t, err) != 255 {
			t.Errorf("%q: exit status %d, want 255 (%v)", args, status(t, err), err)
		}
	}
	if _, err := e.rt("exec", e.id, "sh", "-c", "exit 1"); status(t, err) != 1 {
		t.Errorf("exec of a process exiting 1: exit status %d (%v)", status(t, err), err)
	}
}

// Issue 16 item 6: exec checks its process as create checks the
// container's, before it starts anything (runc's validateProcessSpec): the
// init relies on it and no longer repeats the checks. Exit 255, as exec's
// own failures. Passes with HOSTNET_RUNC=runc 1.5.2 too.
func TestExecValidatesProcess(t *testing.T) {
	e := running(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		args []string
		want []string // in the error, lower-cased: runc's and ours differ in their field names
	}{
		{"relative --cwd", []string{"exec", "--cwd", "tmp", e.id, "true"}, []string{"cwd", "must be an absolute path"}},
		{"process file with a relative cwd", []string{"exec", "--process", `{"args":["true"],"cwd":"tmp"}`, e.id}, []string{"cwd", "must be an absolute path"}},
		{"process file without cwd", []string{"exec", "--process", `{"args":["true"]}`, e.id}, []string{"cwd", "must not be empty"}},
		{"process file without args", []string{"exec", "--process", `{"args":[],"cwd":"/"}`, e.id}, []string{"args must not be empty"}},
	} {
		if tc.args[1] == "--process" {
			file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".json")
			if err := os.WriteFile(file, []byte(tc.args[2]), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.args[2] = file
		}
		_, err := e.rt(tc.args...)
		if status(t, err) != 255 {
			t.Errorf("%s: exit status %d (%v), want 255", tc.name, status(t, err), err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(strings.ToLower(err.Error()), w) {
				t.Errorf("%s: error %v, want it to say %q", tc.name, err, w)
			}
		}
	}
}

// Issue 12 item 14: list --format json has runc's fields, owner included,
// and is null without containers.
func TestListJSON(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	if err := os.MkdirAll(e.root, 0o700); err != nil {
		t.Fatal(err)
	}
	if out := e.mustRT("list", "--format", "json"); out != "null\n" {
		t.Errorf("list --format json without containers = %q, want null", out)
	}
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(e.mustRT("list", "--format", "json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("list --format json = %v, %v", list, err)
	}
	var keys []string
	for k := range list[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"bundle", "created", "id", "ociVersion", "owner", "pid", "rootfs", "status"}; !slices.Equal(keys, want) {
		t.Errorf("list entry keys %v, want runc's %v", keys, want)
	}
	if list[0]["owner"] != "root" || list[0]["status"] != "created" || list[0]["id"] != e.id {
		t.Errorf("list entry %v", list[0])
	}
	if _, err := e.rt("--root", filepath.Join(e.root, "none"), "list"); err == nil {
		t.Error("list with a missing --root succeeded")
	}
}

// Issue 12 item 14: kill ID 0 checks that the init is alive; a stopped
// container refuses a signal, unless --all, as runc.
func TestKillZeroAndStopped(t *testing.T) {
	e := running(t)
	e.mustRT("kill", e.id, "0")
	e.mustRT("kill", e.id, "KILL")
	e.waitStatus(specs.StateStopped)
	if _, err := e.rt("kill", e.id, "0"); err == nil {
		t.Error("kill ID 0 of a stopped container succeeded")
	}
	if _, err := e.rt("kill", e.id, "TERM"); err == nil || !strings.Contains(e.lastError(), "container not running") {
		t.Errorf("kill of a stopped container: %v, log %q; want \"container not running\"", err, e.lastError())
	}
	e.mustRT("kill", "--all", e.id, "KILL")
	e.mustRT("delete", e.id)
}

// Issue 12 item 14: a created container takes execs, as runc's does.
func TestExecIntoCreated(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	if _, err := e.create(); err != nil {
		t.Fatal(err)
	}
	if out, err := e.rt("exec", e.id, "echo", "hi"); err != nil || out != "hi\n" {
		t.Errorf("exec into a created container = %q, %v", out, err)
	}
	if s := e.state(); s.Status != specs.StateCreated {
		t.Errorf("status after exec %s, want created", s.Status)
	}
}

// Issue 12 item 14: exec --additional-gids adds supplementary groups (runc,
// urfave/cli, refuses mixing it with -g on one line).
func TestExecAdditionalGids(t *testing.T) {
	e := running(t)
	out := e.mustRT("exec", "--additional-gids", "10", "--additional-gids", "20", e.id, "grep", "^Groups:", "/proc/self/status")
	if fields := strings.Fields(out); !slices.Contains(fields, "10") || !slices.Contains(fields, "20") {
		t.Errorf("exec --additional-gids 10 --additional-gids 20: %q", out)
	}
	if _, err := e.rt("exec", "-g", "x", e.id, "true"); err == nil {
		t.Error("exec -g x succeeded")
	}
}

// Issue 12 item 14: a paused container refuses an exec unless
// --ignore-paused, which then runs once the container resumes.
func TestExecIgnorePaused(t *testing.T) {
	e := running(t)
	e.mustRT("pause", e.id)
	if _, err := e.rt("exec", e.id, "true"); err == nil {
		t.Fatal("exec into a paused container succeeded")
	}
	type result struct {
		out string
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := e.rt("exec", "--ignore-paused", e.id, "echo", "resumed")
		done <- result{out, err}
	}()
	e.mustRT("resume", e.id)
	if r := <-done; r.err != nil || r.out != "resumed\n" {
		t.Errorf("exec --ignore-paused = %q, %v", r.out, r.err)
	}
}

// makeSubCgroups creates the sub-cgroup "sub" of e's cgroup in every
// hierarchy but a hybrid host's unified one, for exec --cgroup, and removes
// them at cleanup, before the container is deleted.
func makeSubCgroups(t *testing.T, e *env) {
	t.Helper()
	var subs []string
	for _, dir := range cgroupDirs(e.spec.Linux.CgroupsPath) {
		if _, err := os.Stat(dir); err == nil && !strings.HasSuffix(filepath.Dir(dir), "/unified") {
			sub := filepath.Join(dir, "sub")
			if err := os.Mkdir(sub, 0o755); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, sub)
			// A v1 cpuset starts empty: give it the parent's, as a
			// user of --cgroup must.
			// On v2 the sub-cgroup has no cpuset files of its own unless
			// the container's enables the controller below it.
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if _, err := os.Stat(filepath.Join(sub, f)); err != nil {
					continue
				}
				if v, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
					if err := os.WriteFile(filepath.Join(sub, f), v, 0); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	}
	removeSubs := func() {
		for _, s := range subs {
			_ = os.Remove(s)
		}
	}
	t.Cleanup(removeSubs)
}

// Issue 12 item 14: exec --cgroup puts the process in an existing
// sub-cgroup of the container's, in all hierarchies or in one controller's;
// a path out of the container's cgroup is refused.
func TestExecSubCgroup(t *testing.T) {
	e := running(t)
	makeSubCgroups(t, e)
	cgroupOf := func(args ...string) map[string]string {
		t.Helper()
		pidFile := filepath.Join(t.TempDir(), "pid")
		argv := append(append([]string{"exec", "-d", "--pid-file", pidFile}, args...), e.id, "sleep", "1000")
		e.mustRT(argv...)
		data, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
		// It leaves its cgroup as it exits, a zombie of the init's.
		defer unix.Kill(pid, unix.SIGKILL)
		lines, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
			parts := strings.SplitN(l, ":", 3)
			out[parts[1]] = parts[2]
		}
		return out
	}
	base := e.spec.Linux.CgroupsPath
	_, v1 := cgroupOf()["memory"]
	for ctrl, p := range cgroupOf("--cgroup", "sub") {
		// "" is the unified hierarchy: the only one on v2; on a hybrid
		// host it is checked by TestHybridUnifiedHierarchy.
		if (ctrl != "" || !v1) && !strings.HasPrefix(ctrl, "name=") && p != base+"/sub" {
			t.Errorf("exec --cgroup sub: %q cgroup %s, want %s/sub", ctrl, p, base)
		}
	}
	if v1 {
		for ctrl, p := range cgroupOf("--cgroup", "memory:sub") {
			want := base
			if ctrl == "memory" {
				want += "/sub"
			}
			if ctrl != "" && !strings.HasPrefix(ctrl, "name=") && p != want {
				t.Errorf("exec --cgroup memory:sub: %s cgroup %s, want %s", ctrl, p, want)
			}
		}
	}
	if _, err := e.rt("exec", "--cgroup", "../..", e.id, "true"); err == nil {
		t.Error("exec --cgroup ../.. succeeded")
	}
}

// Issue 12 item 14: --pidfd-socket receives a pidfd of the init (create)
// or of the exec'd process.
func TestPidfdSocket(t *testing.T) {
	e := newEnv(t, "sleep", "1000")
	receive := func(args []string, command ...string) (pid int, pidfd int) {
		t.Helper()
		path := filepath.Join(t.TempDir(), "pidfd.sock")
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		got := make(chan int, 1)
		go func() {
			defer close(got)
			conn, err := l.AcceptUnix()
			if err != nil {
				return
			}
			defer conn.Close()
			oob := make([]byte, unix.CmsgSpace(4))
			_, oobn, _, _, err := conn.ReadMsgUnix(make([]byte, 256), oob)
			if err != nil {
				return
			}
			msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
			if err != nil || len(msgs) != 1 {
				return
			}
			if fds, err := unix.ParseUnixRights(&msgs[0]); err == nil && len(fds) == 1 {
				got <- fds[0]
			}
		}()
		pidFile := filepath.Join(t.TempDir(), "pid")
		argv := append(append(args, "--pidfd-socket", path, "--pid-file", pidFile, e.id), command...)
		if _, err := e.rt(argv...); err != nil {
			t.Fatal(err)
		}
		fd, ok := <-got
		if !ok {
			t.Fatalf("%s --pidfd-socket: no descriptor received", args[0])
		}
		t.Cleanup(func() { unix.Close(fd) })
		data, _ := os.ReadFile(pidFile)
		pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		return pid, fd
	}
	check := func(name string, pid, fd int) {
		t.Helper()
		info, err := os.ReadFile("/proc/self/fdinfo/" + strconv.Itoa(fd))
		if err != nil || !strings.Contains(string(info), "\nPid:\t"+strconv.Itoa(pid)+"\n") {
			t.Errorf("%s: the descriptor received is not a pidfd of %d:\n%s", name, pid, info)
		}
		if err := unix.PidfdSendSignal(fd, 0, nil, 0); err != nil {
			t.Errorf("%s: pidfd_send_signal: %v", name, err)
		}
	}
	e.writeSpec()
	pid, fd := receive([]string{"create", "--bundle", e.bundle})
	check("create", pid, fd)
	e.mustRT("start", e.id)
	pid, fd = receive([]string{"exec", "-d"}, "sleep", "1000")
	check("exec", pid, fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil {
		t.Error(err)
	}
}

// Issue 12 item 14: run --keep leaves the stopped container for delete.
func TestRunKeep(t *testing.T) {
	e := newEnv(t, "true")
	e.writeSpec()
	cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "run", "--keep", "--bundle", e.bundle, e.id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("run --keep: %v: %s", err, out)
	}
	if s := e.state(); s.Status != specs.StateStopped {
		t.Errorf("status after run --keep %s, want stopped", s.Status)
	}
	e.mustRT("delete", e.id)
	e.assertGone()
}
