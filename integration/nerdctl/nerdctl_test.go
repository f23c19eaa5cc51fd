package nerdctl

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/spec"
)

// runc152 is the reference runtime; nerdctl runs a runc binary given by
// path with containerd's runc shim.
const runc152 = "/var/cache/hostnet/runc-v1.5.2/bin/runc"

// nerdctlSubnet is nerdctl's default network ("bridge", nerdctl0).
var nerdctlSubnet = netip.MustParsePrefix("10.4.0.0/24")

// hostnetSubnet is hostnet's default bridge subnet: nerdctl sends a
// non-runc runtime no options, so the shim's defaults apply.
var hostnetSubnet = netip.MustParsePrefix("10.89.0.0/16")

// lane is the lane's containerd and nerdctl's private state.
type lane struct {
	d        *daemon.Daemon
	nerdctl  string
	dataRoot string
	netconf  string
	warm     atomic.Bool
}

// global are nerdctl's flags that keep it on the lane's containerd and
// state.
func (l *lane) global() []string {
	return []string{"--address", l.d.Address, "--namespace", l.d.Namespace, "--data-root", l.dataRoot,
		"--cni-path", cniBinDir, "--cni-netconfpath", l.netconf, "--cgroup-manager", "cgroupfs"}
}

// run runs nerdctl in containerd's netns and returns its combined output.
func (l *lane) run(ctx context.Context, args ...string) (string, error) {
	cmd := l.d.InNetNS(ctx, l.nerdctl, append(l.global(), args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("nerdctl %s: %w\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String(), err
}

// need returns the lane, or skips the test saying why there is none.
func need(t *testing.T) *lane {
	t.Helper()
	if env == nil {
		t.Skip(skipReason)
	}
	env.warmUp(t)
	return env
}

// warmUp runs one runc container on nerdctl's default network, so that
// its bridge and CNI's chains exist before any test takes its "before":
// they are nerdctl's network, which every runtime gets.
func (l *lane) warmUp(t *testing.T) {
	if l.warm.Load() {
		return
	}
	l.mustRun(t, "run", "--rm", "--runtime", referenceRuntime(), image.DefaultName, "true")
	l.warm.Store(true)
}

// referenceRuntime is runc 1.5.2 if built, else containerd's runc shim
// with the runc on PATH.
func referenceRuntime() string {
	if _, err := os.Stat(runc152); err == nil {
		return runc152
	}
	return daemon.RuncRuntime
}

func (l *lane) mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := l.run(ctx(t), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runFails runs nerdctl expecting it to fail with every one of want in its
// output.
func (l *lane) runFails(t *testing.T, want []string, args ...string) string {
	t.Helper()
	out, err := l.run(ctx(t), args...)
	if err == nil {
		t.Fatalf("nerdctl %s succeeded:\n%s", strings.Join(args, " "), out)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("nerdctl %s output does not say %q:\n%s", strings.Join(args, " "), w, out)
		}
	}
	return out
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

var seq atomic.Int64

// name is a container name unique to the test.
func name(t *testing.T) string {
	n := strings.ToLower(regexp.MustCompile(`[^a-zA-Z0-9]+`).ReplaceAllString(t.Name(), "-"))
	return fmt.Sprintf("%s-%d", strings.Trim(n, "-"), seq.Add(1))
}

// removeAfter removes the container when the test ends, whatever happened.
func (l *lane) removeAfter(t *testing.T, names ...string) {
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, n := range names {
			_, _ = l.run(c, "rm", "-f", n)
		}
	})
}

// hostState records containerd's netns, "the host" of host-mode
// containers; the cleanup undoes whatever a failing test left there.
func (l *lane) hostState(t *testing.T) *hoststate.State {
	t.Helper()
	st, err := hoststate.Take(l.d.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if diff := l.diff(t, st); len(diff) > 0 {
			if err := hoststate.Restore(st); err != nil {
				t.Errorf("cleaning the host netns: %v", err)
			}
		}
	})
	return st
}

func (l *lane) diff(t *testing.T, before *hoststate.State) []string {
	t.Helper()
	now, err := hoststate.Take(before.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	return hoststate.Diff(before, now)
}

// assertHostUnchanged fails if anything appeared in (or vanished from)
// containerd's netns since before.
func (l *lane) assertHostUnchanged(t *testing.T, before *hoststate.State) {
	t.Helper()
	if diff := l.diff(t, before); len(diff) > 0 {
		t.Errorf("the host's network namespace changed:\n%s", strings.Join(diff, "\n"))
	}
}

// hostNetNS is containerd's netns as a container's readlink shows it.
func (l *lane) hostNetNS(t *testing.T) string {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(l.d.NetNSPath(), &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("net:[%d]", st.Ino)
}

// modeOf is the network mode the shim logged for container id.
func (l *lane) modeOf(t *testing.T, id string) string {
	t.Helper()
	data, err := os.ReadFile(l.d.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`msg="network mode" id=` + regexp.QuoteMeta(id) + ` mode=(\w+)`)
	m := re.FindAllSubmatch(data, -1)
	if len(m) == 0 {
		t.Fatalf("the shim logged no network mode for %s", id)
	}
	return string(m[len(m)-1][1])
}

// idOf is the full id of a named container.
func (l *lane) idOf(t *testing.T, n string) string {
	t.Helper()
	return strings.TrimSpace(l.mustRun(t, "inspect", "--format", "{{.ID}}", n))
}

// get fetches url from inside containerd's netns, retrying while the
// server comes up.
func (l *lane) get(t *testing.T, url string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: l.d.DialContext}}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := client.Get(url)
		if err == nil {
			body, rerr := io.ReadAll(resp.Body)
			resp.Body.Close()
			if rerr == nil && resp.StatusCode == http.StatusOK {
				return strings.TrimSpace(string(body))
			}
			err = fmt.Errorf("%s %w", resp.Status, rerr)
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s: %v", url, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// httpd is a command serving body on port 80 from busybox's httpd.
func httpd(body string) []string {
	return []string{"sh", "-c", "mkdir -p /www && echo " + body + " > /www/index.html && exec httpd -f -p 80 -h /www"}
}

// TestDefaultNetwork: `nerdctl run --runtime io.containerd.hostnet.v1`
// with nerdctl's default network gets that network, as with runc: its own
// netns with eth0 on nerdctl's bridge. hostnet does not put it in the
// host's netns, where nerdctl's CNI hook would configure the host: while
// it runs, CNI's host side is only its veth on nerdctl's bridge, and after
// `nerdctl rm -f` the host holds nothing the same run with runc 1.5.2 does
// not leave.
func TestDefaultNetwork(t *testing.T) {
	l := need(t)
	scenario := func(runtime string) []string {
		before := l.hostState(t)
		n := name(t)
		l.removeAfter(t, n)
		l.mustRun(t, "run", "-d", "--name", n, "--runtime", runtime, image.DefaultName, "sleep", "600")
		netns := strings.TrimSpace(l.mustRun(t, "exec", n, "readlink", "/proc/self/ns/net"))
		if netns == l.hostNetNS(t) {
			t.Fatalf("%s: container in the host's netns %s", runtime, netns)
		}
		addr := eth0Addr(t, l.mustRun(t, "exec", n, "ip", "-o", "-4", "addr", "show", "dev", "eth0"))
		if !nerdctlSubnet.Contains(addr) {
			t.Errorf("%s: eth0 %s, want an address of nerdctl's network %s", runtime, addr, nerdctlSubnet)
		}
		for _, line := range l.diff(t, before) {
			if strings.HasPrefix(line, "+ link eth") || (strings.HasPrefix(line, "+ addr") && !strings.HasPrefix(line, "+ addr nerdctl0 ")) {
				t.Errorf("%s: client CNI in the host's netns: %s", runtime, line)
			}
		}
		if runtime == daemon.HostnetRuntime {
			if got := l.modeOf(t, l.idOf(t, n)); got != string(spec.ModeNone) {
				t.Errorf("mode %s, want none: nerdctl's network is honoured", got)
			}
		}
		l.mustRun(t, "rm", "-f", n)
		return normalize(l.diff(t, before))
	}
	ref := scenario(referenceRuntime())
	if extra := notIn(scenario(daemon.HostnetRuntime), ref); len(extra) > 0 {
		t.Errorf("left on the host by hostnet and not by runc:\n%s", strings.Join(extra, "\n"))
	}
}

// TestPublish: -p with nerdctl's network is nerdctl's CNI portmap, as
// with runc: the port answers on the host's loopback, `nerdctl port` tells
// the truth, and hostnet leaves nothing on the host runc does not.
func TestPublish(t *testing.T) {
	l := need(t)
	scenario := func(runtime string, port int) []string {
		before := l.hostState(t)
		n := name(t)
		l.removeAfter(t, n)
		l.mustRun(t, append([]string{"run", "-d", "--name", n, "--runtime", runtime, "-p", fmt.Sprintf("127.0.0.1:%d:80", port), image.DefaultName}, httpd("hello-publish")...)...)
		if got := l.get(t, fmt.Sprintf("http://127.0.0.1:%d/", port)); got != "hello-publish" {
			t.Errorf("%s: GET = %q", runtime, got)
		}
		if got := l.mustRun(t, "port", n); !strings.Contains(got, fmt.Sprintf("80/tcp -> 127.0.0.1:%d", port)) {
			t.Errorf("%s: nerdctl port = %q", runtime, got)
		}
		l.mustRun(t, "rm", "-f", n)
		return normalize(l.diff(t, before))
	}
	ref := scenario(referenceRuntime(), 18085)
	if extra := notIn(scenario(daemon.HostnetRuntime, 18080), ref); len(extra) > 0 {
		t.Errorf("left on the host by hostnet and not by runc:\n%s", strings.Join(extra, "\n"))
	}
}

// normalize makes a host diff comparable between two containers: CNI's
// per-container chain names and container ids are hashes of the id.
func normalize(diff []string) []string {
	out := make([]string, len(diff))
	for i, line := range diff {
		line = cniChain.ReplaceAllString(line, "CNI-${1}<hash>")
		out[i] = containerID.ReplaceAllString(line, "<id>")
	}
	slices.Sort(out)
	return out
}

// notIn is what got has that ref has not (as multisets). The reference
// ran first, so it also shows what a network's first container sets up
// for good (portmap's chains): hostnet may leave less, never more.
func notIn(got, ref []string) []string {
	have := map[string]int{}
	for _, l := range ref {
		have[l]++
	}
	var extra []string
	for _, l := range got {
		if have[l] > 0 {
			have[l]--
			continue
		}
		extra = append(extra, l)
	}
	return extra
}

var (
	cniChain    = regexp.MustCompile(`CNI-((?:DN-|SN-)?)[0-9a-f]{16,}`)
	containerID = regexp.MustCompile(`[0-9a-f]{64}`)
)

// TestHostNetwork: --network host is hostnet's host mode: the host's
// netns, a port opened in the container is the host's, and nothing is
// added to the host.
func TestHostNetwork(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	n := name(t)
	l.removeAfter(t, n)
	l.mustRun(t, append([]string{"run", "-d", "--name", n, "--network", "host", "--runtime", daemon.HostnetRuntime, image.DefaultName},
		"sh", "-c", "mkdir -p /www && echo hello-host > /www/index.html && exec httpd -f -p 127.0.0.1:18081 -h /www")...)
	if got := l.modeOf(t, l.idOf(t, n)); got != string(spec.ModeHost) {
		t.Errorf("mode %s, want host", got)
	}
	if got := strings.TrimSpace(l.mustRun(t, "exec", n, "readlink", "/proc/self/ns/net")); got != l.hostNetNS(t) {
		t.Errorf("container netns %s, want the host's %s", got, l.hostNetNS(t))
	}
	if got := l.get(t, "http://127.0.0.1:18081/"); got != "hello-host" {
		t.Errorf("GET = %q", got)
	}
	l.mustRun(t, "rm", "-f", n)
	l.assertHostUnchanged(t, before)
}

// TestNoneNetwork: --network none is honoured: a netns of its own with
// only its loopback.
func TestNoneNetwork(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	n := name(t)
	l.removeAfter(t, n)
	l.mustRun(t, "run", "-d", "--name", n, "--network", "none", "--runtime", daemon.HostnetRuntime, image.DefaultName, "sleep", "600")
	if got := l.modeOf(t, l.idOf(t, n)); got != string(spec.ModeNone) {
		t.Errorf("mode %s, want none", got)
	}
	if got := strings.TrimSpace(l.mustRun(t, "exec", n, "readlink", "/proc/self/ns/net")); got == l.hostNetNS(t) {
		t.Errorf("container in the host's netns")
	}
	links := l.mustRun(t, "exec", n, "ip", "-o", "link")
	if strings.Count(strings.TrimSpace(links), "\n") != 0 || !strings.Contains(links, ": lo:") {
		t.Errorf("links in a --network none container:\n%s", links)
	}
	l.mustRun(t, "rm", "-f", n)
	l.assertHostUnchanged(t, before)
}

// TestHostAnnotationRefused: asking hostnet for host mode under nerdctl's
// CNI network would have nerdctl's hook run CNI in the host's netns: the
// create fails saying what to pass, and nothing appears on the host.
func TestHostAnnotationRefused(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	n := name(t)
	l.removeAfter(t, n)
	l.runFails(t, []string{spec.NetworkAnnotation + "=host conflicts with nerdctl's --network bridge", "pass --network host"},
		"run", "--rm", "--name", n, "--runtime", daemon.HostnetRuntime, "--annotation", spec.NetworkAnnotation+"=host", image.DefaultName, "true")
	l.runFails(t, []string{spec.NetworkAnnotation + "=bridge conflicts with nerdctl's --network bridge", "--network none"},
		"run", "--rm", "--name", n+"-b", "--runtime", daemon.HostnetRuntime, "--annotation", spec.NetworkAnnotation+"=bridge", image.DefaultName, "true")
	l.removeAfter(t, n+"-b")
	l.assertHostUnchanged(t, before)
}

// TestBridgeMode: hostnet's own bridge under nerdctl is --network none
// with the annotation; ports are published with hostnet's annotation.
func TestBridgeMode(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	n := name(t)
	l.removeAfter(t, n)
	l.mustRun(t, append([]string{"run", "-d", "--name", n, "--network", "none", "--runtime", daemon.HostnetRuntime,
		"--annotation", spec.NetworkAnnotation + "=bridge", "--annotation", spec.PortsAnnotation + "=127.0.0.1:18082:80", image.DefaultName}, httpd("hello-bridge")...)...)
	if got := l.modeOf(t, l.idOf(t, n)); got != string(spec.ModeBridge) {
		t.Errorf("mode %s, want bridge", got)
	}
	addr := eth0Addr(t, l.mustRun(t, "exec", n, "ip", "-o", "-4", "addr", "show", "dev", "eth0"))
	if !hostnetSubnet.Contains(addr) {
		t.Errorf("eth0 %s, want one in hostnet's bridge subnet %s", addr, hostnetSubnet)
	}
	if got := l.get(t, "http://127.0.0.1:18082/"); got != "hello-bridge" {
		t.Errorf("GET = %q", got)
	}
	l.mustRun(t, "rm", "-f", n)
	// hostnet's bridge and its nftables table stay, like nerdctl's: they
	// are the network's. Nothing of the container's does.
	for _, line := range l.diff(t, before) {
		if !strings.HasPrefix(line, "+ link hostnet0 bridge") && !strings.HasPrefix(line, "+ addr hostnet0 ") &&
			!strings.Contains(line, " route ") && !strings.HasPrefix(line, "+ nft") {
			t.Errorf("left on the host: %s", line)
		}
	}
}

// TestBridgePortsRefused: nerdctl 2.2 keeps -p in its state directory, not
// in the spec, and publishes it from its CNI hook, which --network none
// does not run: in hostnet's bridge mode the create fails naming the
// annotation to use instead, rather than `nerdctl ps` listing a port that
// nothing publishes.
func TestBridgePortsRefused(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	n := name(t)
	l.removeAfter(t, n)
	l.runFails(t, []string{"--annotation " + spec.PortsAnnotation + "=127.0.0.1:18083:80/tcp instead of -p"},
		"run", "-d", "--name", n, "--network", "none", "--runtime", daemon.HostnetRuntime,
		"--annotation", spec.NetworkAnnotation+"=bridge", "-p", "127.0.0.1:18083:80", image.DefaultName, "sleep", "600")
	l.assertHostUnchanged(t, before)
}

// TestCompose: `nerdctl compose up` with `runtime: io.containerd.hostnet.v1`:
// services on the project's network reach each other by name and publish
// ports, a network_mode: host service is on the host's network.
func TestCompose(t *testing.T) {
	l := need(t)
	before := l.hostState(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	compose := fmt.Sprintf(`services:
  web:
    image: %[1]s
    runtime: %[2]s
    command: ["sh", "-c", "mkdir -p /www && echo hello-compose > /www/index.html && exec httpd -f -p 80 -h /www"]
    ports: ["127.0.0.1:18084:80"]
  client:
    image: %[1]s
    runtime: %[2]s
    command: ["sleep", "600"]
  onhost:
    image: %[1]s
    runtime: %[2]s
    network_mode: host
    command: ["sleep", "600"]
`, image.DefaultName, daemon.HostnetRuntime)
	if err := os.WriteFile(file, []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	project := fmt.Sprintf("hn%d", os.Getpid())
	t.Cleanup(func() {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_, _ = l.run(c, "compose", "-f", file, "-p", project, "down", "-v")
	})
	l.mustRun(t, "compose", "-f", file, "-p", project, "up", "-d")
	if got := l.get(t, "http://127.0.0.1:18084/"); got != "hello-compose" {
		t.Errorf("GET published port = %q", got)
	}
	if got := strings.TrimSpace(l.mustRun(t, "compose", "-f", file, "-p", project, "exec", "-T", "client", "wget", "-qO-", "http://web/")); got != "hello-compose" {
		t.Errorf("client -> web by service name = %q", got)
	}
	if got := strings.TrimSpace(l.mustRun(t, "compose", "-f", file, "-p", project, "exec", "-T", "onhost", "readlink", "/proc/self/ns/net")); got != l.hostNetNS(t) {
		t.Errorf("network_mode: host service in %s, want the host's %s", got, l.hostNetNS(t))
	}
	if got := strings.TrimSpace(l.mustRun(t, "compose", "-f", file, "-p", project, "exec", "-T", "web", "readlink", "/proc/self/ns/net")); got == l.hostNetNS(t) {
		t.Errorf("web is in the host's netns")
	}
	l.mustRun(t, "compose", "-f", file, "-p", project, "down", "-v")
	// The project's network was nerdctl's to make and remove; no client
	// CNI ever touched the host itself.
	for _, line := range l.diff(t, before) {
		if strings.HasPrefix(line, "+ link eth") || strings.HasPrefix(line, "+ addr eth") {
			t.Errorf("client CNI in the host's netns: %s", line)
		}
	}
}

// eth0Addr reads the address of `ip -o -4 addr show dev eth0`.
func eth0Addr(t *testing.T, out string) netip.Addr {
	t.Helper()
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			p, err := netip.ParsePrefix(f[i+1])
			if err == nil {
				return p.Addr()
			}
		}
	}
	t.Fatalf("no IPv4 address on eth0 in %q", out)
	return netip.Addr{}
}
