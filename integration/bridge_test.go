package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/spec"
)

// bridgeNet is a bridge network private to the test: its own bridge name,
// subnet and IPAM directory, given to the shim as its TOML config. The
// bridge is deleted by t.Cleanup.
type bridgeNet struct {
	name    string
	subnet  netip.Prefix
	gateway netip.Addr
	// subnet6 and gateway6 are set by newBridgeNet6.
	subnet6  netip.Prefix
	gateway6 netip.Addr
	ipamDir  string
	config   string // path of the TOML file
	toml     string // its [network.bridge] section
}

func newBridgeNet(t *testing.T) *bridgeNet {
	t.Helper()
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("bridge mode is hostnet's")
	}
	pid := os.Getpid()
	b := &bridgeNet{
		name:    fmt.Sprintf("hnit%d", pid),
		subnet:  netip.MustParsePrefix(fmt.Sprintf("10.236.%d.0/24", pid%200)),
		ipamDir: t.TempDir(),
	}
	b.gateway = b.subnet.Addr().Next()
	b.config = filepath.Join(t.TempDir(), "hostnet.toml")
	b.toml = fmt.Sprintf("[network.bridge]\nname = %q\nsubnet = %q\nstate_dir = %q\n", b.name, b.subnet, b.ipamDir)
	if err := os.WriteFile(b.config, []byte(b.toml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if link, err := netlink.LinkByName(b.name); err == nil {
			if err := netlink.LinkDel(link); err != nil {
				t.Errorf("delete bridge %s: %v", b.name, err)
			}
		}
	})
	return b
}

// args are the `ctr run` flags for a container in mode on this network.
func (b *bridgeNet) args(mode spec.NetworkMode, ports string) []string {
	a := []string{"--rm", "--runtime-config-path", b.config, "--annotation", spec.NetworkAnnotation + "=" + string(mode)}
	if ports != "" {
		a = append(a, "--annotation", spec.PortsAnnotation+"="+ports)
	}
	return a
}

func (b *bridgeNet) run(t *testing.T, mode spec.NetworkMode, id string, args ...string) (string, error) {
	t.Helper()
	ctx := t.Context()
	return testDaemon.CtrOutput(ctx, ctrRunArgs(b.args(mode, ""), id, args...)...)
}

// start runs a container in the background until the test ends.
func (b *bridgeNet) start(t *testing.T, id, ports string, args ...string) *background {
	t.Helper()
	bg := &background{cmd: testDaemon.Ctr(t.Context(), ctrRunArgs(b.args(spec.ModeBridge, ports), id, args...)...), done: make(chan struct{})}
	bg.cmd.Stdout, bg.cmd.Stderr = &bg.stdout, &bg.stderr
	if err := bg.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		bg.err = bg.cmd.Wait()
		close(bg.done)
	}()
	t.Cleanup(func() {
		removeContainer(t, id)
		<-bg.done
	})
	waitRunning(t, id, bg.done, func() string {
		return fmt.Sprintf("ctr run exited: %v\nstderr: %s", bg.err, bg.stderr.String())
	})
	return bg
}

// eth0Addr parses `ip -o -4 addr show dev eth0`.
func eth0Addr(t *testing.T, out string) netip.Addr {
	t.Helper()
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			if p, err := netip.ParsePrefix(f[i+1]); err == nil {
				return p.Addr()
			}
		}
	}
	t.Fatalf("no IPv4 address on eth0 in %q", out)
	return netip.Addr{}
}

func TestBridgeEth0(t *testing.T) {
	b := newBridgeNet(t)
	out, err := b.run(t, spec.ModeBridge, newID(t), eth0Command...)
	if err != nil {
		t.Fatal(err)
	}
	b.assertEth0(t, out)
	b.assertNothingLeft(t)
}

// eth0Command prints a container's eth0 address and routes, for assertEth0.
var eth0Command = []string{"sh", "-c", "ip -o -4 addr show dev eth0; ip route"}

// assertEth0 checks eth0Command's output: an address in the subnet, the
// default route through the gateway.
func (b *bridgeNet) assertEth0(t *testing.T, out string) {
	t.Helper()
	if addr := eth0Addr(t, out); !b.subnet.Contains(addr) || addr == b.gateway {
		t.Errorf("eth0 has %s, want a container address in %s", addr, b.subnet)
	}
	if !strings.Contains(out, "default via "+b.gateway.String()) {
		t.Errorf("no default route via %s:\n%s", b.gateway, out)
	}
}

func TestBridgeReachability(t *testing.T) {
	b := newBridgeNet(t)
	hostPort := freeLoopbackPort(t)
	id := newID(t)
	const body = "hello from a bridge container"
	// Published on loopback only: a publish on every local address would
	// DNAT the machine's uplink too, which the tests never touch.
	b.start(t, id, fmt.Sprintf("127.0.0.1:%d:8080", hostPort), "sh", "-c",
		fmt.Sprintf("mkdir -p /tmp/www && echo '%s' > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www", body))
	ctrAddr := b.leased(t, id)

	getAll(t, body,
		fmt.Sprintf("http://%s/index.html", netip.AddrPortFrom(ctrAddr, 8080)), // host to container
		fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort),                // published, loopback
	)

	// Container to gateway: a listener on the bridge's address only.
	gw := serveLine(t, b.gateway, "gateway")
	out, err := b.run(t, spec.ModeBridge, newID(t), "nc", "-w", "5", gw.Addr().String(), fmt.Sprint(gw.Port()))
	if err != nil || strings.TrimSpace(out) != "gateway" {
		t.Errorf("container to gateway: %q, %v", out, err)
	}
}

func getRetry(hc *http.Client, url string) (string, error) {
	var lastErr error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := hc.Get(url)
		if err != nil {
			lastErr = err
			continue
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		return strings.TrimSpace(string(data)), err
	}
	return "", lastErr
}

func TestBridgeConcurrentAddresses(t *testing.T) {
	b := newBridgeNet(t)
	const n = 20
	addrs := make([]string, n)
	errs := make([]error, n)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = newID(t)
	}
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			addrs[i], errs[i] = b.run(t, spec.ModeBridge, ids[i], "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		})
	}
	wg.Wait()
	seen := map[netip.Addr]string{}
	for i := range n {
		if errs[i] != nil {
			t.Errorf("%s: %v", ids[i], errs[i])
			continue
		}
		addr := eth0Addr(t, addrs[i])
		if !b.subnet.Contains(addr) {
			t.Errorf("%s got %s outside %s", ids[i], addr, b.subnet)
		}
		if other, dup := seen[addr]; dup {
			t.Errorf("%s and %s both got %s", other, ids[i], addr)
		}
		seen[addr] = ids[i]
	}
	b.assertNothingLeft(t)
}

func TestNoneModeOnlyLoopback(t *testing.T) {
	b := newBridgeNet(t)
	out, err := b.run(t, spec.ModeNone, newID(t), "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	if names := linkNames(t, out); len(names) != 1 || names[0] != "lo" {
		t.Errorf("none mode links = %v, want only lo", names)
	}
}

// leased returns the address the IPAM state leases to the container id.
func (b *bridgeNet) leased(t *testing.T, id string) netip.Addr {
	t.Helper()
	return leasedIn(t, b.leasesFile(), id)
}

// leasedIn returns the address the IPAM state file leases to the container
// id.
func leasedIn(t *testing.T, file, id string) netip.Addr {
	t.Helper()
	var st struct{ Leases map[netip.Addr]string }
	data, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	for addr, key := range st.Leases {
		// namespace/id@<bundle hash>; before issue 10, namespace/id.
		if k := testDaemon.Namespace + "/" + id; key == k || strings.HasPrefix(key, k+"@") {
			return addr
		}
	}
	t.Fatalf("no lease for %s in %s", id, data)
	return netip.Addr{}
}

func (b *bridgeNet) leasesFile() string {
	return filepath.Join(b.ipamDir, strings.ReplaceAll(b.subnet.String(), "/", "-")+".json")
}

// assertNothingLeft checks that every container run on the network is
// gone without a trace: no port on the bridge, no lease, no netns mount,
// no hostnet nftables rule.
func (b *bridgeNet) assertNothingLeft(t *testing.T) {
	t.Helper()
	b.assertNothingLeftIn(t, testDaemon.Namespace)
}

// assertNothingLeftIn is assertNothingLeft for the containers of another
// daemon's namespace.
func (b *bridgeNet) assertNothingLeftIn(t *testing.T, namespace string) {
	t.Helper()
	if br, err := netlink.LinkByName(b.name); err == nil {
		links, _ := netlink.LinkList()
		for _, l := range links {
			if l.Attrs().MasterIndex == br.Attrs().Index {
				t.Errorf("veth %s still on bridge %s", l.Attrs().Name, b.name)
			}
		}
	}
	data, _ := os.ReadFile(b.leasesFile())
	if strings.Contains(string(data), namespace) {
		t.Errorf("leases left: %s", data)
	}
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for line := range strings.Lines(string(mountinfo)) {
		if strings.Contains(line, "nsfs") && strings.Contains(line, namespace) {
			t.Errorf("netns mount left: %s", line)
		}
	}
	if out, err := exec.Command("nft", "list", "table", "ip", "hostnet").CombinedOutput(); err == nil &&
		strings.Contains(string(out), namespace) {
		t.Errorf("nftables rules left:\n%s", out)
	}
}

// serveLine serves line to every TCP connection on addr (a port of the
// kernel's choosing) until the test ends, and returns where.
func serveLine(t *testing.T, addr netip.Addr, line string) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, line+"\n")
			c.Close()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// getAll GETs each URL (retrying while the server starts) and wants body.
func getAll(t *testing.T, body string, urls ...string) {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	for _, url := range urls {
		if got, err := getRetry(hc, url); err != nil || got != body {
			t.Errorf("GET %s = %q, %v; want %q", url, got, err, body)
		}
	}
}
