package integration

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/inspect"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/spec"
)

// hostnetDoctor runs `hostnet doctor --json` against the test daemon with
// extra environment and arguments, and returns its findings and exit
// status.
func hostnetDoctor(t *testing.T, env []string, args ...string) ([]inspect.Finding, int) {
	t.Helper()
	requireHostnet(t)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	args = append([]string{"--state", testDaemon.State, "doctor", "--json"}, args...)
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "hostnet"), args...)
	cmd.Env = append(withoutEnvVar(os.Environ(), "HOSTNET_CONFIG"), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	status := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		status = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("hostnet %s: %v", strings.Join(args, " "), err)
	}
	var findings []inspect.Finding
	if err := json.Unmarshal(out, &findings); err != nil {
		t.Fatalf("hostnet %s: %v (status %d)\n%s\nstderr: %s", strings.Join(args, " "), err, status, out, stderr.String())
	}
	failed := inspect.FailedChecks(findings)
	if (status != 0) != (len(failed) > 0) || (status != 0 && !strings.Contains(stderr.String(), "failed: "+strings.Join(failed, ", "))) {
		t.Errorf("hostnet %s: exit status %d with failed checks %q; stderr %q", strings.Join(args, " "), status, failed, stderr.String())
	}
	return findings, status
}

// hostnetDoctorTable is `hostnet doctor` with its table piped, whatever
// its exit status.
func hostnetDoctorTable(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "hostnet"), append([]string{"--state", testDaemon.State, "doctor"}, args...)...)
	cmd.Env = withoutEnvVar(os.Environ(), "HOSTNET_CONFIG")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("hostnet doctor: %v", err)
	}
	return string(out)
}

func withoutEnvVar(env []string, name string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// findingsOf returns the findings of check whose message contains s.
func findingsOf(fs []inspect.Finding, check, s string) []inspect.Finding {
	var out []inspect.Finding
	for _, f := range fs {
		if f.Check == check && strings.Contains(f.Message, s) {
			out = append(out, f)
		}
	}
	return out
}

func logFindings(t *testing.T, what string, fs []inspect.Finding) {
	t.Helper()
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %-14s %-6s %s", f.Check, f.Status, f.Message)
		if f.Remedy != "" {
			fmt.Fprintf(&b, " => %s", f.Remedy)
		}
		b.WriteByte('\n')
	}
	t.Logf("%s:\n%s", what, b.String())
}

// wantStatus checks that exactly one finding of check (containing s) has
// status.
func wantStatus(t *testing.T, fs []inspect.Finding, check, s, status string) inspect.Finding {
	t.Helper()
	got := findingsOf(fs, check, s)
	if len(got) != 1 || got[0].Status != status {
		t.Errorf("findings of %s with %q: %+v, want one %s", check, s, got, status)
		return inspect.Finding{}
	}
	return got[0]
}

// goodCRIConfig writes a containerd configuration registering hostnet as
// README says.
func goodCRIConfig(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "config.toml")
	doc := "version = 3\n\n[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.hostnet]\n" +
		"  runtime_type = 'io.containerd.hostnet.v1'\n  pod_annotations = ['hostnet.containerd.io/*']\n"
	if err := os.WriteFile(file, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// TestHostnetDoctor: on the test's node (a private containerd with bin/
// on its PATH), doctor finds the containerd serving the state directory
// and reports what the test set up as healthy: its version, the shim and
// hostnet-runc where containerd and the shim look them up, the node file
// named in containerd's environment, a CRI entry as README writes it; the
// harness's own CRI entry, which lacks pod_annotations, fails. No
// leftover is reported for running containers. A node file that does not
// parse fails, naming the file.
func TestHostnetDoctor(t *testing.T) {
	requireHostnet(t)
	b := newBridgeNet(t)
	hostID, bridgeID := newID(t), newID(t)
	startCtrRunFlags(t, modeFlags(spec.ModeHost, ""), hostID, "sleep", "600")
	b.start(t, bridgeID, "", "sleep", "600")

	findings, _ := hostnetDoctor(t, nil, "--containerd-config", goodCRIConfig(t))
	logFindings(t, "hostnet doctor", findings)
	wantStatus(t, findings, "containerd", fmt.Sprintf("containerd pid %d ", testDaemon.Pid()), inspect.StatusOK)
	wantStatus(t, findings, "containerd", "version ", inspect.StatusOK)
	wantStatus(t, findings, "shim", filepath.Join(binDir, "containerd-shim-hostnet-v1"), inspect.StatusOK)
	wantStatus(t, findings, "runtime", filepath.Join(binDir, "hostnet-runc"), inspect.StatusOK)
	wantStatus(t, findings, "node-config", testDaemon.HostnetConfigPath(), inspect.StatusOK)
	wantStatus(t, findings, "cri", `CRI handler "hostnet"`, inspect.StatusOK)
	wantStatus(t, findings, "nftables", "", inspect.StatusOK)
	wantStatus(t, findings, "subnet", "bridge "+b.name+"'s subnet "+b.subnet.String(), inspect.StatusOK)
	for _, id := range []string{hostID, bridgeID} {
		for _, f := range findingsOf(findings, "leftover", testDaemon.Namespace+"/"+id) {
			t.Errorf("running container %s reported as a leftover: %+v", id, f)
		}
	}

	// The daemon's own configuration registers the handler without
	// pod_annotations: CRI would drop hostnet's annotations.
	findings, status := hostnetDoctor(t, nil)
	if f := wantStatus(t, findings, "cri", filepath.Join(testDaemon.Dir, "config.toml"), inspect.StatusFail); !strings.Contains(f.Remedy, "pod_annotations") {
		t.Errorf("cri finding's remedy %q does not name pod_annotations", f.Remedy)
	}
	if status != 1 {
		t.Errorf("exit status %d with a failed check, want 1", status)
	}

	// A node file that does not parse.
	bad := filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(bad, []byte("[network]\ndefault_mode = 'bridge'\nbogus = 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	findings, status = hostnetDoctor(t, []string{"HOSTNET_CONFIG=" + bad}, "--containerd-config", goodCRIConfig(t))
	if f := wantStatus(t, findings, "node-config", bad, inspect.StatusFail); !strings.Contains(f.Message, "bogus") {
		t.Errorf("node-config finding %q does not name the bad key", f.Message)
	}
	if status != 1 {
		t.Errorf("exit status %d with a bad node file, want 1", status)
	}
}

// TestHostnetDoctorFix: a bridge-mode container whose shim and init were
// SIGKILLed while containerd was stopped leaves its netns pin, lease and
// nftables rules; doctor reports each, --fix removes them (checked here
// on the host, not through doctor), a second run reports nothing left,
// and a running bridge-mode container beside it keeps all of its own. A
// process in the stale container's netns keeps --fix off it. A lease of a
// container whose bundle is gone is removed; another containerd's is not.
func TestHostnetDoctorFix(t *testing.T) {
	requireHostnet(t)
	b := newBridgeNet(t)
	liveID, staleID := newID(t), newID(t)
	b.start(t, liveID, "", "sleep", "600")
	mustCtr(t, ctrRunArgs([]string{"--detach", "--runtime-config-path", b.config, "--annotation", spec.NetworkAnnotation + "=bridge"}, staleID, "sleep", "600")...)
	waitRunning(t, staleID, nil, nil)
	liveAddr, staleAddr := b.leased(t, liveID), b.leased(t, staleID)
	livePid, initPid := taskPid(t, liveID), taskPid(t, staleID)
	bundleOf := func(id string) string {
		return filepath.Join(testDaemon.State, "io.containerd.runtime.v2.task", testDaemon.Namespace, id)
	}
	liveKey := network.BridgeKey(bundleOf(liveID), testDaemon.Namespace, liveID)
	staleKey := network.BridgeKey(bundleOf(staleID), testDaemon.Namespace, staleID)
	cfg := goodCRIConfig(t)

	cont := orphanTask(t, staleID, initPid)

	// What is on the host, independently of doctor.
	type held struct {
		pin, lease bool
		rules      int
	}
	heldBy := func(id, key string) held {
		var h held
		var st unix.Statfs_t
		h.pin = unix.Statfs(filepath.Join(bundleOf(id), "netns"), &st) == nil && st.Type == unix.NSFS_MAGIC
		var leases struct{ Leases map[string]string }
		if data, err := os.ReadFile(b.leasesFile()); err == nil && json.Unmarshal(data, &leases) == nil {
			for _, k := range leases.Leases {
				h.lease = h.lease || k == key
			}
		}
		keys, err := nat.Table{Name: nat.DefaultTable, LockDir: nat.DefaultLockDir}.Keys()
		if err != nil {
			t.Fatal(err)
		}
		h.rules = keys[key]
		return h
	}
	if h := heldBy(staleID, staleKey); !h.pin || !h.lease || h.rules == 0 {
		t.Fatalf("the stale container holds %+v, want its pin, lease and rules (the test cannot show their removal)", h)
	}
	live := heldBy(liveID, liveKey)
	if !live.pin || !live.lease || live.rules == 0 {
		t.Fatalf("the live container holds %+v, want its pin, lease and rules", live)
	}

	// A lease of a container of this containerd whose bundle is gone, and
	// one of another containerd's (another state directory).
	ghostID := "ghost-" + staleID
	ghostKey := network.BridgeKey(bundleOf(ghostID), testDaemon.Namespace, ghostID)
	foreignKey := network.BridgeKey(filepath.Join(t.TempDir(), "io.containerd.runtime.v2.task", testDaemon.Namespace, ghostID), testDaemon.Namespace, ghostID)
	alloc, err := ipam.New(b.ipamDir, b.subnet, b.gateway)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{ghostKey, foreignKey} {
		if _, _, err := alloc.Allocate(key); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := alloc.Release(key); err != nil {
				t.Errorf("release %s: %v", key, err)
			}
		})
	}
	leased := func(key string) bool {
		leases, err := alloc.Leases()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range leases {
			if k == key {
				return true
			}
		}
		return false
	}

	findings, status := hostnetDoctor(t, nil, "--containerd-config", cfg)
	logFindings(t, "hostnet doctor, stale container", findings)
	if f := wantStatus(t, findings, "leftover", ghostKey, inspect.StatusFail); !strings.Contains(f.Message, "whose bundle is gone") {
		t.Errorf("orphan lease finding %q", f.Message)
	}
	if got := findingsOf(findings, "leftover", foreignKey); len(got) > 0 {
		t.Errorf("another containerd's lease is reported: %+v", got)
	}
	t.Logf("hostnet doctor, stale container, as a table:\n%s", hostnetDoctorTable(t, "--containerd-config", cfg))
	f := wantStatus(t, findings, "leftover", testDaemon.Namespace+"/"+staleID, inspect.StatusFail)
	for _, want := range []string{"netns pin " + filepath.Join(bundleOf(staleID), "netns"), "IPAM lease " + staleAddr.String(), "nftables rule"} {
		if !strings.Contains(f.Message, want) {
			t.Errorf("leftover finding %q does not name %q", f.Message, want)
		}
	}
	if !strings.Contains(f.Remedy, "--fix") {
		t.Errorf("remedy %q does not name --fix", f.Remedy)
	}
	if got := findingsOf(findings, "leftover", liveID); len(got) > 0 {
		t.Errorf("the running container %s is reported: %+v", liveID, got)
	}
	if status != 1 {
		t.Errorf("exit status %d with leftovers, want 1", status)
	}

	// A process in its network namespace: the records say stale, the
	// host says otherwise, and --fix leaves everything.
	sleeper := exec.Command("nsenter", "--net="+filepath.Join(bundleOf(staleID), "netns"), "sleep", "600")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	killSleeper := func() {
		if sleeper.Process != nil && sleeper.ProcessState == nil {
			sleeper.Process.Kill()
			sleeper.Wait()
		}
	}
	defer killSleeper()
	waitNetNS(t, sleeper.Process.Pid, filepath.Join(bundleOf(staleID), "netns"))
	findings, _ = hostnetDoctor(t, nil, "--fix", "--containerd-config", cfg)
	logFindings(t, "hostnet doctor --fix, a process in the stale container's netns", findings)
	if f := wantStatus(t, findings, "leftover", testDaemon.Namespace+"/"+staleID, inspect.StatusWarn); !strings.Contains(f.Message, fmt.Sprint(sleeper.Process.Pid)) {
		t.Errorf("finding %q does not name pid %d", f.Message, sleeper.Process.Pid)
	}
	if h := heldBy(staleID, staleKey); !h.pin || !h.lease || h.rules == 0 {
		t.Errorf("--fix removed records of a container whose netns pid %d is in: it holds %+v", sleeper.Process.Pid, h)
	}
	// The orphan lease goes in the same run; another containerd's stays.
	wantStatus(t, findings, "leftover", ghostKey, inspect.StatusFixed)
	if leased(ghostKey) || !leased(foreignKey) {
		t.Errorf("after --fix: orphan leased %v (want false), another containerd's leased %v (want true)", leased(ghostKey), leased(foreignKey))
	}
	killSleeper()

	findings, _ = hostnetDoctor(t, nil, "--fix", "--containerd-config", cfg)
	logFindings(t, "hostnet doctor --fix", findings)
	wantStatus(t, findings, "leftover", testDaemon.Namespace+"/"+staleID, inspect.StatusFixed)
	if h := heldBy(staleID, staleKey); h.pin || h.lease || h.rules != 0 {
		t.Errorf("after --fix the stale container still holds %+v", h)
	}
	if h := heldBy(liveID, liveKey); h != live {
		t.Errorf("after --fix the live container holds %+v, had %+v", h, live)
	}
	if c := hostnetPs(t)[liveID]; c.Status != "running" || c.Pid != livePid || c.Address != liveAddr {
		t.Errorf("after --fix the live container is %+v, want running pid %d address %s", c, livePid, liveAddr)
	}

	findings, _ = hostnetDoctor(t, nil, "--containerd-config", cfg)
	logFindings(t, "hostnet doctor after --fix", findings)
	for _, f := range findings {
		if f.Check == "leftover" && f.Status == inspect.StatusFail {
			t.Errorf("leftover after --fix: %+v", f)
		}
	}

	// containerd, running again, removes the stale record; the live
	// container still answers on its address.
	cont()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := hostnetPs(t)[staleID]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still listed after containerd cleaned up:\n%s", staleID, hostnetCLI(t, "ps"))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if h := heldBy(liveID, liveKey); h != live {
		t.Errorf("after containerd's cleanup the live container holds %+v, had %+v", h, live)
	}
}

// waitNetNS waits until pid is in the network namespace pinned at pin
// (nsenter has switched and exec'd).
func waitNetNS(t *testing.T, pid int, pin string) {
	t.Helper()
	var want unix.Stat_t
	if err := unix.Stat(pin, &want); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var st unix.Stat_t
		if unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &st) == nil && st.Ino == want.Ino && st.Dev == want.Dev {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never entered %s", pid, pin)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
