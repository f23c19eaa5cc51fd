package integration

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/spec"
)

// requireHostnet skips tests of hostnet's own behaviour when the suite is
// checked against the stock runc shim.
func requireHostnet(t *testing.T) {
	t.Helper()
	if testRuntime != daemon.HostnetRuntime {
		t.Skipf("hostnet behaviour, not provided by %s", testRuntime)
	}
}

// Like Docker's host mode: the host's DNS settings, hosts file and name.
func TestHostModeFiles(t *testing.T) {
	requireHostnet(t)
	id := newID(t)
	out, err := ctrRun(t, id, "sh", "-c", "cat /etc/resolv.conf; echo ---; cat /etc/hosts; echo ---; hostname")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(out, "---\n")
	if len(parts) != 3 {
		t.Fatalf("unexpected output %q", out)
	}
	resolv, _ := os.ReadFile("/etc/resolv.conf")
	hosts, _ := os.ReadFile("/etc/hosts")
	hostname, _ := os.Hostname()
	if parts[0] != string(resolv) {
		t.Errorf("container resolv.conf:\n%s\nwant the host's:\n%s", parts[0], resolv)
	}
	if parts[1] != string(hosts) {
		t.Errorf("container /etc/hosts:\n%s\nwant the host's:\n%s", parts[1], hosts)
	}
	if got := strings.TrimSpace(parts[2]); got != hostname {
		t.Errorf("container hostname %q, want the host's %q", got, hostname)
	}
}

func TestPublishedPortsWarning(t *testing.T) {
	requireHostnet(t)
	id := newID(t)
	port := freeLoopbackPort(t)
	ports := fmt.Sprintf("%s=%d:%d/tcp", spec.PortsAnnotation, port, port)
	before := strings.Count(testDaemon.LogTail(100000), spec.PublishedPortsWarning)
	if _, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs([]string{"--rm", "--annotation", ports}, id, "true")...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(testDaemon.LogTail(100000), spec.PublishedPortsWarning) == before {
		if time.Now().After(deadline) {
			t.Fatalf("the shim did not log %q", spec.PublishedPortsWarning)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestHostModeBadInput(t *testing.T) {
	requireHostnet(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	for _, tc := range []struct {
		name, annotation, want string
	}{
		{"taken port", fmt.Sprintf("%s=%d:%d", spec.PortsAnnotation, taken, taken),
			fmt.Sprintf("port %d/tcp is already in use on the host by pid %d", taken, os.Getpid())},
		{"malformed ports", spec.PortsAnnotation + "=80", `annotation hostnet.containerd.io/ports: invalid port mapping "80"`},
		{"unknown mode", spec.NetworkAnnotation + "=overlay", `annotation hostnet.containerd.io/network: invalid network mode "overlay": must be one of host, bridge, none`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := newID(t)
			_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs([]string{"--rm", "--annotation", tc.annotation}, id, "true")...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ctr run: %v, want an error containing %q", err, tc.want)
			}
			removeContainer(t, id)
			assertNoMounts(t, id)
			assertNoRuntimeState(t, id)
		})
	}
}

// The shim listens on a filesystem socket only: a host-network container
// shares the host's abstract socket namespace, but not its filesystem.
func TestShimSocketUnreachableFromContainer(t *testing.T) {
	requireHostnet(t)
	id := newID(t)
	bg := startCtrRun(t, id, "sleep", "1000")
	data, err := os.ReadFile(filepath.Join(testDaemon.TaskDir(id), "bootstrap.json"))
	if err != nil {
		t.Fatal(err)
	}
	var boot struct{ Address string }
	if err := json.Unmarshal(data, &boot); err != nil {
		t.Fatal(err)
	}
	sock, ok := strings.CutPrefix(boot.Address, "unix://")
	if !ok || !filepath.IsAbs(sock) {
		t.Fatalf("shim address %q is not a filesystem unix socket", boot.Address)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("shim socket %s: %v", sock, err)
	}
	out := mustCtr(t, "tasks", "exec", "--exec-id", "probe", id, "sh", "-c",
		"test -e "+sock+" && echo visible; grep -c '@.*"+filepath.Base(sock)+"' /proc/net/unix; true")
	if strings.Contains(out, "visible") {
		t.Errorf("the shim socket %s is reachable from inside the container", sock)
	}
	if n, _ := strconv.Atoi(strings.TrimSpace(out)); n != 0 {
		t.Errorf("the shim listens on an abstract socket the container shares (%s)", out)
	}
	mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	bg.wait(t, time.Minute)
}

// TestUserNamespaceExec: `ctr run --uidmap/--gidmap` gives a host-network
// container its own user namespace; `ctr tasks exec` lands in it, as the
// namespace's root (an unprivileged uid on the host).
func TestUserNamespaceExec(t *testing.T) {
	id := newID(t)
	startCtrRunFlags(t, []string{"--uidmap", "0:200000:65536", "--gidmap", "0:200000:65536"}, id, "sleep", "1000")
	out := mustCtr(t, "tasks", "exec", "--exec-id", "probe", id, "sh", "-c", "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/user; readlink /proc/1/ns/user")
	f := strings.Fields(out)
	if len(f) != 6 || f[0] != "0" || f[1] != "0" || f[2] != "200000" || f[4] != f[5] {
		t.Errorf("exec'd process: %q, want uid 0 mapped to 200000, in the init's user namespace", out)
	}
	own, _ := os.Readlink("/proc/self/ns/user")
	if len(f) == 6 && f[4] == own {
		t.Errorf("exec'd process is in the host's user namespace %s", own)
	}
}
