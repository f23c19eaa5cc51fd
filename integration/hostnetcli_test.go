package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/containerd/console"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/shim/inspect"
	"github.com/hostnet-dev/hostnet/spec"
)

// hostnetCLI runs bin/hostnet against the test daemon's state directory.
func hostnetCLI(t *testing.T, args ...string) string {
	t.Helper()
	requireHostnet(t)
	bin := filepath.Join(binDir, "hostnet")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--state", testDaemon.State}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hostnet %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// hostnetOnTerminal runs bin/hostnet with its output on a terminal cols
// wide and returns what it printed.
func hostnetOnTerminal(t *testing.T, cols uint16, args ...string) string {
	t.Helper()
	pty, slave, err := console.NewPty()
	if err != nil {
		t.Fatal(err)
	}
	defer pty.Close()
	if err := pty.Resize(console.WinSize{Width: cols, Height: 50}); err != nil {
		t.Fatal(err)
	}
	sf, err := os.OpenFile(slave, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), filepath.Join(binDir, "hostnet"), append([]string{"--state", testDaemon.State}, args...)...)
	cmd.Stdout = sf
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		sf.Close()
		t.Fatal(err)
	}
	sf.Close()
	var out syncBuffer
	copied := make(chan struct{})
	go func() { io.Copy(&out, pty); close(copied) }()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("hostnet %s on a terminal: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	// The copy ends with EIO once the slave is closed.
	select {
	case <-copied:
	case <-time.After(10 * time.Second):
		pty.Close()
		<-copied
	}
	return strings.ReplaceAll(out.String(), "\r\n", "\n")
}

// hostnetPs is `hostnet ps --json`, this daemon's containers by id.
func hostnetPs(t *testing.T) map[string]inspect.Container {
	t.Helper()
	var list []inspect.Container
	out := hostnetCLI(t, "ps", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("hostnet ps --json: %v\n%s", err, out)
	}
	byID := map[string]inspect.Container{}
	for _, c := range list {
		if c.Namespace == testDaemon.Namespace {
			byID[c.ID] = c
		}
	}
	return byID
}

// hostnetPorts is `hostnet ports --json`.
func hostnetPorts(t *testing.T) []inspect.Port {
	t.Helper()
	var list []inspect.Port
	out := hostnetCLI(t, "ports", "--json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("hostnet ports --json: %v\n%s", err, out)
	}
	return list
}

// findPort returns the entry of ports for proto/addr:port held as holder.
func findPort(ports []inspect.Port, proto string, addr netip.Addr, port int, holder string) (inspect.Port, bool) {
	for _, p := range ports {
		if p.Protocol == proto && p.Address == addr && int(p.Port) == port && p.Holder == holder {
			return p, true
		}
	}
	return inspect.Port{}, false
}

func modeFlags(mode spec.NetworkMode, ports string) []string {
	f := []string{"--annotation", spec.NetworkAnnotation + "=" + string(mode)}
	if ports != "" {
		f = append(f, "--annotation", spec.PortsAnnotation+"="+ports)
	}
	return f
}

func taskPid(t *testing.T, id string) int {
	t.Helper()
	pid, status := ctrTaskStatus(t, id)
	if status != "RUNNING" || pid <= 0 {
		t.Fatalf("%s: task %s pid %d, want RUNNING", id, status, pid)
	}
	return pid
}

// TestHostnetPs: `hostnet ps` shows a host-mode container with the port it
// declares, a bridge-mode one with its address and published port, and a
// none-mode one, each running, with its init's pid and network namespace
// and why it got its mode; `ports` shows the publication.
func TestHostnetPs(t *testing.T) {
	requireHostnet(t)
	b := newBridgeNet(t)
	declared, published := freeLoopbackPort(t), freeLoopbackPort(t)

	hostID, bridgeID, noneID := newID(t), newID(t), newID(t)
	startCtrRunFlags(t, modeFlags(spec.ModeHost, fmt.Sprintf("%d:%d/tcp", declared, declared)), hostID, "sleep", "600")
	b.start(t, bridgeID, fmt.Sprintf("127.0.0.1:%d:8080/tcp", published), "sleep", "600")
	startCtrRunFlags(t, modeFlags(spec.ModeNone, ""), noneID, "sleep", "600")
	addr := b.leased(t, bridgeID)

	hostNS, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	ps := hostnetPs(t)
	for _, tc := range []struct {
		id, mode, netns string
		addr            netip.Addr
		ports           string
	}{
		{hostID, "host", "host", netip.Addr{}, fmt.Sprintf("%d:%d/tcp", declared, declared)},
		{bridgeID, "bridge", "", addr, fmt.Sprintf("127.0.0.1:%d:8080/tcp", published)},
		{noneID, "none", "", netip.Addr{}, ""},
	} {
		c, ok := ps[tc.id]
		if !ok {
			t.Errorf("hostnet ps does not list %s: %v", tc.id, ps)
			continue
		}
		pid := taskPid(t, tc.id)
		initNS, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			t.Fatal(err)
		}
		wantNS := tc.netns
		if wantNS == "" {
			wantNS = initNS
			if initNS == hostNS {
				t.Errorf("%s: %s mode container in the host's netns", tc.id, tc.mode)
			}
		}
		var ports []string
		for _, p := range c.Ports {
			ports = append(ports, p.String())
		}
		if c.Mode != tc.mode || c.Status != "running" || c.Pid != pid || c.NetNS != wantNS || c.Address != tc.addr ||
			strings.Join(ports, ",") != tc.ports || len(c.Notes) > 0 {
			t.Errorf("hostnet ps: %s: mode %q status %q pid %d netns %q address %s ports %q notes %q;\n"+
				"want mode %q running pid %d netns %q address %s ports %q, no notes",
				tc.id, c.Mode, c.Status, c.Pid, c.NetNS, c.Address, ports, c.Notes, tc.mode, pid, wantNS, tc.addr, tc.ports)
		}
		if c.Why != "annotation "+spec.NetworkAnnotation {
			t.Errorf("hostnet ps: %s: why %q, want the annotation", tc.id, c.Why)
		}
	}

	// The table: a row per container, piped whole.
	table := hostnetCLI(t, "ps")
	t.Logf("hostnet ps:\n%s", table)
	for _, id := range []string{hostID, bridgeID, noneID} {
		if !strings.Contains(table, " "+id+" ") {
			t.Errorf("hostnet ps: no row for %s:\n%s", id, table)
		}
	}

	// The publication, with where it goes.
	pub, ok := findPort(hostnetPorts(t), "tcp", netip.MustParseAddr("127.0.0.1"), published, inspect.HolderPublish)
	if want := netip.AddrPortFrom(addr, 8080).String(); !ok || pub.Container != testDaemon.Namespace+"/"+bridgeID || pub.Target != want || len(pub.Conflicts) > 0 {
		t.Errorf("hostnet ports: publication of %d: %+v (found %v), want %s/%s to %s, no conflicts", published, pub, ok, testDaemon.Namespace, bridgeID, want)
	}
}

// TestHostnetPortsConflicts: `hostnet ports` names a host-mode container
// as the holder of the port it listens on; reports a port a host-mode
// container declared that a host process took after the container was
// created (create refuses one taken before), and a host listener that a
// bridge-mode publication shadows (bridge create refuses one listening
// before).
func TestHostnetPortsConflicts(t *testing.T) {
	requireHostnet(t)
	b := newBridgeNet(t)
	serving, declared, published := freeLoopbackPort(t), freeLoopbackPort(t), freeLoopbackPort(t)

	hostID, bridgeID := newID(t), newID(t)
	startCtrRunFlags(t, modeFlags(spec.ModeHost, fmt.Sprintf("%d:%d/tcp", declared, declared)), hostID,
		"httpd", "-f", "-h", "/", "-p", fmt.Sprintf("127.0.0.1:%d", serving))
	b.start(t, bridgeID, fmt.Sprintf("127.0.0.1:%d:8080/tcp", published), "sleep", "600")
	waitListening(t, serving)

	var listeners []net.Listener
	for _, port := range []int{declared, published} {
		ln, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, ln)
	}
	defer func() {
		for _, ln := range listeners {
			ln.Close()
		}
	}()

	loopback := netip.MustParseAddr("127.0.0.1")
	ports := hostnetPorts(t)
	hostCtr, bridgeCtr := testDaemon.Namespace+"/"+hostID, testDaemon.Namespace+"/"+bridgeID

	if p, ok := findPort(ports, "tcp", loopback, serving, inspect.HolderHostCtr); !ok || p.Container != hostCtr || !strings.HasPrefix(p.Command, "httpd ") || len(p.Conflicts) > 0 {
		t.Errorf("port %d: %+v (found %v), want held by host-mode container %s (httpd), no conflicts", serving, p, ok, hostCtr)
	}
	wantDeclared := fmt.Sprintf("port %d/tcp is declared by host-mode container %s", declared, hostCtr)
	if p, ok := findPort(ports, "tcp", loopback, declared, inspect.HolderHost); !ok || p.Pid != os.Getpid() || strings.Join(p.Conflicts, "; ") != wantDeclared {
		t.Errorf("port %d: %+v (found %v), want held by this test (pid %d), conflict %q", declared, p, ok, os.Getpid(), wantDeclared)
	}
	wantShadowed := "shadowed: bridge-mode container " + bridgeCtr + " publishes this port"
	if p, ok := findPort(ports, "tcp", loopback, published, inspect.HolderHost); !ok || p.Pid != os.Getpid() || strings.Join(p.Conflicts, "; ") != wantShadowed {
		t.Errorf("port %d: %+v (found %v), want held by this test (pid %d), conflict %q", published, p, ok, os.Getpid(), wantShadowed)
	}
	wantShadows := fmt.Sprintf("shadows pid %d (", os.Getpid())
	if p, ok := findPort(ports, "tcp", loopback, published, inspect.HolderPublish); !ok || p.Container != bridgeCtr || len(p.Conflicts) != 1 || !strings.HasPrefix(p.Conflicts[0], wantShadows) {
		t.Errorf("publication %d: %+v (found %v), want by %s, conflict %q...", published, p, ok, bridgeCtr, wantShadows)
	}

	// The table says the same.
	table := hostnetCLI(t, "ports")
	t.Logf("hostnet ports:\n%s", table)
	if !strings.Contains(table, wantDeclared) || !strings.Contains(table, wantShadowed) {
		t.Errorf("hostnet ports table lacks the conflicts:\n%s", table)
	}

	// On a terminal narrower than the table, it is cut to the terminal's
	// width, and says where.
	const cols = 160
	narrow := hostnetOnTerminal(t, cols, "ports")
	t.Logf("hostnet ports on a terminal %d wide:\n%s", cols, narrow)
	for _, line := range strings.Split(strings.TrimSuffix(narrow, "\n"), "\n") {
		if n := utf8.RuneCountInString(line); n > cols {
			t.Errorf("a line %d wide on a terminal %d wide: %q", n, cols, line)
		}
	}
	if !strings.Contains(narrow, "…") || !strings.Contains(narrow, inspect.HolderHostCtr+"  "+hostCtr+" ") {
		t.Errorf("hostnet ports on a terminal: no cut cell, or no row of %s:\n%s", hostCtr, narrow)
	}
}

// TestHostnetPsStale: with containerd stopped (SIGSTOP: it must not clean
// up yet), a container whose shim and init were SIGKILLed is shown as
// stale, not as running; once containerd runs again and cleans up, it is
// gone from the list.
func TestHostnetPsStale(t *testing.T) {
	requireHostnet(t)
	id := newID(t)
	mustCtr(t, ctrRunArgs(append([]string{"--detach"}, modeFlags(spec.ModeHost, "")...), id, "sleep", "600")...)
	waitRunning(t, id, nil, nil)
	initPid := taskPid(t, id)
	if c := hostnetPs(t)[id]; c.Status != "running" || c.Pid != initPid {
		t.Fatalf("before the kill: %+v, want running pid %d", c, initPid)
	}

	cont := orphanTask(t, id, initPid)
	c, ok := hostnetPs(t)[id]
	if !ok || c.Status != inspect.StatusStale || c.Pid != 0 || c.Mode != "host" || len(c.Notes) == 0 {
		t.Errorf("after SIGKILL of shim and init, containerd stopped: %+v (listed %v), want stale, no pid, a note", c, ok)
	}
	table := hostnetCLI(t, "ps")
	t.Logf("hostnet ps, containerd stopped:\n%s", table)
	if !strings.Contains(table, " stale ") {
		t.Errorf("hostnet ps table does not say stale:\n%s", table)
	}

	// containerd, running again, cleans the record up.
	cont()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, ok := hostnetPs(t)[id]; !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still listed after containerd cleaned up:\n%s", id, hostnetCLI(t, "ps"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// orphanTask leaves id's records behind as a crash would: containerd is
// stopped (SIGSTOP, so it cannot clean up), then the task's shim and init
// (initPid) are SIGKILLed. resume lets containerd go on, which cleans up
// after the dead shim; it runs at the end of the test if not called.
func orphanTask(t *testing.T, id string, initPid int) (resume func()) {
	t.Helper()
	shims, err := testDaemon.ShimPids()
	if err != nil {
		t.Fatal(err)
	}
	shimPid := shims[id]
	if shimPid == 0 {
		t.Fatalf("no shim for %s", id)
	}
	containerd := testDaemon.Pid()
	if err := syscall.Kill(containerd, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	stopped := true
	resume = func() {
		if stopped {
			if err := syscall.Kill(containerd, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT containerd: %v", err)
			}
			stopped = false
		}
	}
	t.Cleanup(resume)
	for _, pid := range []int{shimPid, initPid} {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		if !daemon.WaitGone(pid, 10*time.Second) {
			t.Fatalf("pid %d survived SIGKILL", pid)
		}
	}
	return resume
}
