package integration

// Compatibility with the containerd releases before 2.3, which start shims
// through the legacy `start` (shim/manager/legacy.go) and, for 1.7, talk
// task API v2 (shim/task/taskv2.go). The package's own containerd (2.4)
// covers the bootstrap protocol of 2.3 and later.
//
// Each release runs from /var/cache/hostnet/containerd-<version>/bin, where
// contrib/compat-containerd.sh (called by contrib/setup.sh) builds it:
//
//	HOSTNET_COMPAT_CONTAINERD  the releases to test (default: compatVersions)
//	HOSTNET_COMPAT_REQUIRE     if set (CI sets it), a release that is not
//	                           installed fails the test instead of skipping it
//	HOSTNET_CONTAINERD_BIN     one more containerd to test, e.g. Debian's
//	                           (HOSTNET_CTR_BIN: its ctr, default: beside it)

import (
	"context"
	"crypto/sha256"
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

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/spec"
)

// compatVersions are the releases CI tests: the newest patch release of
// each line before 2.3 that the Go module proxy serves. Keep them in step
// with DEFAULT_VERSIONS in contrib/compat-containerd.sh.
var compatVersions = []string{"v1.7.35", "v2.0.14", "v2.2.9"}

// compatCache is where contrib/compat-containerd.sh installs them.
const compatCache = "/var/cache/hostnet"

// TestCompatContainerd runs what a node admin relies on through each older
// containerd and its own ctr: a host-mode `ctr run --rm` with its exit code,
// exec, pause/resume, metrics and SIGKILL of a running container, bridge
// mode, a restart of containerd under a running container, a shim killed
// under its container, and pods through CRI (host network, CNI network,
// bridge mode); each leaving nothing behind.
func TestCompatContainerd(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("the compatibility test is hostnet's: the stock runc shim of these releases is not installed")
	}
	versions := compatVersions
	if v := os.Getenv("HOSTNET_COMPAT_CONTAINERD"); v != "" {
		versions = strings.Fields(v)
	}
	for _, v := range versions {
		t.Run(v, func(t *testing.T) {
			bin := filepath.Join(compatCache, "containerd-"+v, "bin")
			if !fileExists(filepath.Join(bin, "containerd")) || !fileExists(filepath.Join(bin, "ctr")) {
				msg := fmt.Sprintf("containerd %s is not installed in %s (contrib/compat-containerd.sh %s installs it)", v, bin, v)
				if os.Getenv("HOSTNET_COMPAT_REQUIRE") != "" {
					t.Fatal(msg)
				}
				t.Skip(msg)
			}
			testCompat(t, filepath.Join(bin, "containerd"), filepath.Join(bin, "ctr"))
		})
	}
	if bin := os.Getenv("HOSTNET_CONTAINERD_BIN"); bin != "" {
		t.Run("HOSTNET_CONTAINERD_BIN", func(t *testing.T) {
			ctrBin := os.Getenv("HOSTNET_CTR_BIN")
			if ctrBin == "" {
				ctrBin = filepath.Join(filepath.Dir(bin), "ctr")
			}
			testCompat(t, bin, ctrBin)
		})
	}
}

// compatEnv is a private containerd of another release and its ctr.
type compatEnv struct {
	d *daemon.Daemon
}

func testCompat(t *testing.T, containerd, ctr string) {
	major, version := daemon.Version(containerd)
	if major == 0 {
		t.Fatalf("%s --version: cannot tell its version (%q)", containerd, version)
	}
	t.Logf("containerd %s (%s), ctr %s", version, containerd, ctr)

	// A namespace, and so a cgroup tree and runtime state, of its own.
	release, _, _ := strings.Cut(version, "+")
	ns := fmt.Sprintf("hostnet-compat-%d-%s", os.Getpid(), notIDChars.ReplaceAllString(strings.ToLower(release), ""))
	e := startCompatEnv(t, daemon.Config{Containerd: containerd, Ctr: ctr, Namespace: ns}, "containerd "+version)
	t.Run("RunExitCode", e.testRun)
	t.Run("ExecPauseKill", e.testExecPauseKill)
	t.Run("Bridge", e.testBridge)
	t.Run("RestartContainerd", e.testRestart)
	t.Run("ShimKilled", e.testShimKilled)
	t.Run("CRI", func(t *testing.T) {
		// Its own daemon of the release, configured as
		// contrib/containerd-config*.toml register hostnet for Kubernetes
		// (version 2 for containerd 1.7).
		// The node's file says hardened, which the host-network pod shows:
		// the release's shims inherit its environment (HOSTNET_CONFIG).
		ce := startCRIEnvWith(t, criEnvOptions{containerd: containerd, ctr: ctr, hardened: true})
		t.Run("HostNetworkPod", ce.testHostNetworkPod)
		t.Run("PodNetwork", ce.testPodNetwork)
		t.Run("BridgeRejectedForHostNetworkPod", ce.testBridgeHostNetworkPod)
	})
}

// startCompatEnv starts a private containerd of cfg (BinDir and
// RuntimeRoots are the tests'), called name in the test's log, with the
// busybox image, and stops it when the test ends.
func startCompatEnv(t *testing.T, cfg daemon.Config, name string) *compatEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cfg.BinDir, cfg.RuntimeRoots = binDir, []string{runtimeRoot}
	d, err := daemon.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s's log:\n%s", name, d.LogTail(60))
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop %s: %v", name, err)
		}
	})
	if err := d.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	return &compatEnv{d: d}
}

// ctr runs ctr against the daemon, also from a cleanup, after t.Context()
// is done.
func (e *compatEnv) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return e.d.CtrOutput(ctx, args...)
}

func (e *compatEnv) mustCtr(t *testing.T, args ...string) string {
	t.Helper()
	out, err := e.ctr(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runArgs is `run --fifo-dir ... --runtime hostnet [extra...] <image> <id> <args...>`.
func (e *compatEnv) runArgs(extra []string, id string, args ...string) []string {
	a := append([]string{"run", "--fifo-dir", e.d.FIFODir, "--runtime", daemon.HostnetRuntime}, extra...)
	a = append(a, image.DefaultName, id)
	return append(a, args...)
}

// task returns the pid and status `ctr tasks ls` lists for id; ok is false
// if it does not list id.
func (e *compatEnv) task(t *testing.T, id string) (pid int, status string, ok bool) {
	t.Helper()
	for _, line := range strings.Split(e.mustCtr(t, "tasks", "ls"), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			pid, _ := strconv.Atoi(f[1])
			return pid, f[2], true
		}
	}
	return 0, "", false
}

// waitStatus polls `ctr tasks ls` until id's task has status want, and
// returns its pid.
func (e *compatEnv) waitStatus(t *testing.T, id, want string) int {
	t.Helper()
	return e.waitStatusUnless(t, id, want, nil)
}

// waitStatusUnless is waitStatus that gives up when the `ctr run` whose
// container it waits for returns on runErr.
func (e *compatEnv) waitStatusUnless(t *testing.T, id, want string, runErr <-chan error) int {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		pid, status, _ := e.task(t, id)
		if status == want {
			return pid
		}
		select {
		case err := <-runErr:
			t.Fatalf("ctr run returned while waiting for %s to be %s: %v", id, want, err)
		case <-deadline:
			t.Fatalf("task %s is %q, want %q", id, status, want)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// runDetached starts `sleep 1000` in id with `ctr run --detach`, waits
// until it runs, and registers its removal.
func (e *compatEnv) runDetached(t *testing.T, id string) (initPid, shimPid int) {
	t.Helper()
	t.Cleanup(func() { e.remove(t, id) })
	e.mustCtr(t, e.runArgs([]string{"--detach"}, id, "sleep", "1000")...)
	initPid = e.waitStatus(t, id, "RUNNING")
	shims, err := e.d.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	if shimPid = shims[id]; shimPid == 0 {
		t.Fatalf("no shim serves running container %s (shims: %v)", id, shims)
	}
	if !cgroupExists(t, "/"+e.d.Namespace+"/"+id) {
		t.Errorf("running container %s has no cgroup /%s/%s", id, e.d.Namespace, id)
	}
	return initPid, shimPid
}

// remove kills and deletes id if the test left it.
func (e *compatEnv) remove(t *testing.T, id string) {
	if _, _, ok := e.task(t, id); ok {
		_, _ = e.ctr(t, "tasks", "kill", "--signal", "SIGKILL", id)
		_, _ = e.ctr(t, "tasks", "delete", "--force", id)
	}
	if out, err := e.ctr(t, "containers", "ls", "--quiet"); err == nil && strings.Contains("\n"+out, "\n"+id+"\n") {
		if _, err := e.ctr(t, "containers", "delete", id); err != nil {
			t.Errorf("cleanup %s: %v", id, err)
		}
	}
}

// shimSocket is the socket of id's shim: <containerd address>/<namespace>/<id>
// hashed into /run/containerd/s, as containerd before 2.3 has it.
func (e *compatEnv) shimSocket(id string) string {
	sum := sha256.Sum256([]byte(filepath.Join(e.d.Address, e.d.Namespace, id)))
	return fmt.Sprintf("/run/containerd/s/%x", sum)
}

// assertGone checks that container id left nothing: no task, shim, mount,
// bundle, runtime state, cgroup or shim socket.
func (e *compatEnv) assertGone(t *testing.T, id string, pids ...int) {
	t.Helper()
	if out, err := e.ctr(t, "containers", "ls", "--quiet"); err != nil || strings.Contains("\n"+out, "\n"+id+"\n") {
		t.Errorf("container %s still listed (err=%v)", id, err)
	}
	for _, pid := range pids {
		if pid != 0 && !daemon.WaitGone(pid, 10*time.Second) {
			t.Errorf("pid %d of %s still running", pid, id)
		}
	}
	// containerd may still be running the shim's `delete` after a dead
	// shim (1.6 does so after the task is gone from its list).
	deadline := time.Now().Add(10 * time.Second)
	for {
		shims, err := e.d.ShimPids()
		if err != nil {
			t.Error(err)
			break
		}
		pid, ok := shims[id]
		if !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("shim pid %d still serves %s", pid, id)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	assertNoMounts(t, id)
	// The bundle goes once that `delete` has returned (2.2 removes it
	// after logging "cleaning up dead shim").
	for {
		_, err := os.Stat(e.d.TaskDir(id))
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("task bundle %s left (err=%v)", e.d.TaskDir(id), err)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if runtimeRoot != "" {
		if _, err := os.Stat(filepath.Join(e.d.RuntimeStateRoot(testRuntime, runtimeRoot), id)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("runtime state of %s left (err=%v)", id, err)
		}
	}
	if cgroupExists(t, "/"+e.d.Namespace+"/"+id) {
		t.Errorf("cgroup /%s/%s left", e.d.Namespace, id)
	}
	if _, err := os.Stat(e.shimSocket(id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("shim socket %s of %s left (err=%v)", e.shimSocket(id), id, err)
	}
}

// testRun: `ctr run --rm` in host mode: the host's network namespace, the
// program's exit code, nothing left.
func (e *compatEnv) testRun(t *testing.T) {
	id := "compat-run"
	out, err := e.ctr(t, e.runArgs([]string{"--rm"}, id, "sh", "-c", "readlink /proc/self/ns/net; exit 3")...)
	var ce *daemon.CtrError
	if !errors.As(err, &ce) || ce.ExitCode() != 3 {
		t.Fatalf("ctr run: %v, want exit status 3", err)
	}
	hostNet, _ := os.Readlink("/proc/self/ns/net")
	if got := strings.TrimSpace(out); got != hostNet {
		t.Errorf("container's net namespace %q, want the host's %q", got, hostNet)
	}
	e.assertGone(t, id)
}

// testExecPauseKill: a foreground `ctr run --rm` whose container gets
// execs (output and exit code), is paused and resumed, reports metrics,
// and is SIGKILLed: ctr run returns 137 and removes it.
func (e *compatEnv) testExecPauseKill(t *testing.T) {
	id := "compat-exec"
	t.Cleanup(func() { e.remove(t, id) })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := e.d.Ctr(ctx, e.runArgs([]string{"--rm"}, id, "sleep", "1000")...)
	var stderr strings.Builder
	run.Stderr = &stderr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- fmt.Errorf("%w: %s", run.Wait(), stderr.String()) }()
	initPid := e.waitStatusUnless(t, id, "RUNNING", runErr)
	shims, _ := e.d.ShimPids()

	if out := e.mustCtr(t, "tasks", "exec", "--exec-id", "e1", id, "echo", "hi"); strings.TrimSpace(out) != "hi" {
		t.Errorf("exec printed %q, want hi", out)
	}
	_, err := e.ctr(t, "tasks", "exec", "--exec-id", "e2", id, "sh", "-c", "exit 5")
	var ce *daemon.CtrError
	if !errors.As(err, &ce) || ce.ExitCode() != 5 {
		t.Errorf("exec of `exit 5`: %v, want exit status 5", err)
	}
	e.mustCtr(t, "tasks", "pause", id)
	e.waitStatus(t, id, "PAUSED")
	e.mustCtr(t, "tasks", "resume", id)
	e.waitStatus(t, id, "RUNNING")
	if out := e.mustCtr(t, "tasks", "metrics", id); !strings.Contains(out, "pids.current") {
		t.Errorf("ctr tasks metrics has no pids.current:\n%s", out)
	}

	e.mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	select {
	case err := <-runErr:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 137 {
			t.Errorf("ctr run after SIGKILL: %v, want exit status 137", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ctr run did not return within 30s of SIGKILL")
	}
	e.assertGone(t, id, initPid, shims[id])
}

// testBridge: bridge mode, configured through the runtime options' TOML
// file and the annotation: eth0 in the subnet, the route to the gateway,
// and no veth, lease, netns or nft rule left.
func (e *compatEnv) testBridge(t *testing.T) {
	b := newBridgeNet(t)
	id := "compat-bridge"
	out, err := e.ctr(t, e.runArgs(b.args(spec.ModeBridge, ""), id, eth0Command...)...)
	if err != nil {
		t.Fatal(err)
	}
	b.assertEth0(t, out)
	e.assertGone(t, id)
	b.assertNothingLeftIn(t, e.d.Namespace)
}

// testRestart: a running container survives a restart of containerd, which
// reconnects to its shim (containerd 1.7 through the bundle's address
// file): same shim and init, exec, SIGKILL and delete work afterwards.
func (e *compatEnv) testRestart(t *testing.T) {
	id := "compat-restart"
	initPid, shimPid := e.runDetached(t, id)
	before := e.d.Pid()
	if err := e.d.Restart(t.Context()); err != nil {
		t.Fatal(err)
	}
	if e.d.Pid() == before {
		t.Fatal("containerd has the same pid after the restart")
	}
	if shims, err := e.d.ShimPids(); err != nil || shims[id] != shimPid {
		t.Errorf("shim of %s after the restart: %d (%v), want %d still running", id, shims[id], err, shimPid)
	}
	if pid, status, _ := e.task(t, id); pid != initPid || status != "RUNNING" {
		t.Errorf("after the restart, ctr tasks ls: pid %d %s, want pid %d RUNNING", pid, status, initPid)
	}
	if out, err := e.ctr(t, "tasks", "exec", "--exec-id", "after-restart", id, "echo", "alive"); err != nil || strings.TrimSpace(out) != "alive" {
		t.Errorf("exec after the restart: %q, %v", out, err)
	}
	e.mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	e.waitStatus(t, id, "STOPPED")
	e.mustCtr(t, "tasks", "delete", id)
	e.mustCtr(t, "containers", "delete", id)
	e.assertGone(t, id, initPid, shimPid)
}

// testShimKilled: after its shim is SIGKILLed, containerd notices, runs
// the shim's `delete` (shim/manager's Stop) which kills the container and
// removes its mounts, state, cgroup and the dead shim's socket, and the
// container can be deleted.
func (e *compatEnv) testShimKilled(t *testing.T) {
	id := "compat-shim-killed"
	initPid, shimPid := e.runDetached(t, id)
	if _, err := os.Stat(e.shimSocket(id)); err != nil {
		t.Fatalf("shim socket of a running container: %v", err)
	}
	e.killShim(t, id, shimPid)
	if _, _, ok := e.task(t, id); ok {
		e.mustCtr(t, "tasks", "delete", id)
	}
	e.mustCtr(t, "containers", "delete", id)
	e.assertGone(t, id, initPid)
}

// killShim kills id's shim, pid shimPid, and waits until containerd has
// cleaned up after it (`shim delete`): it then deletes the task, or (1.6)
// lists it as stopped.
func (e *compatEnv) killShim(t *testing.T, id string, shimPid int) {
	t.Helper()
	if err := syscall.Kill(shimPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !daemon.WaitGone(shimPid, 10*time.Second) {
		t.Fatalf("shim %d survived SIGKILL", shimPid)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, status, ok := e.task(t, id)
		if !ok || status == "STOPPED" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s 30s after its shim died", id, status)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
