package integration

// Bridge mode must not expose the host (issue 10): what a pod author's
// annotations, a second containerd or a bad runtime config could do to the
// host's network, through the real containerd. The raw-frame attack on the
// host's loopback services is TestBridgeLoopbackUnreachable in
// shim/network, in namespaces of its own.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/spec"
)

// withRuntime is the network with the variant's OCI runtime: the same
// bridge section, and [runtime] binary when the variant sets one.
func (b *bridgeNet) withRuntime(t *testing.T, v runtimeVariant) *bridgeNet {
	t.Helper()
	if v.configPath == "" {
		return b
	}
	c := *b
	c.config = filepath.Join(t.TempDir(), "hostnet.toml")
	if err := os.WriteFile(c.config, []byte(b.toml+fmt.Sprintf("[runtime]\nbinary = %q\n", v.binary)), 0o644); err != nil {
		t.Fatal(err)
	}
	return &c
}

// forEachBridgeRuntime runs f once per OCI runtime the shim drives, each
// on the same bridge network.
func forEachBridgeRuntime(t *testing.T, f func(t *testing.T, v runtimeVariant, b *bridgeNet)) {
	b := newBridgeNet(t)
	forEachRuntime(t, func(t *testing.T, v runtimeVariant) { f(t, v, b.withRuntime(t, v)) })
}

// netState is what the shim recorded in a bridge container's bundle.
type netState struct {
	Key        string
	Address    netip.Addr
	HostIfName string
}

func readNetState(t *testing.T, d *daemon.Daemon, id string) netState {
	t.Helper()
	var st netState
	data, err := os.ReadFile(filepath.Join(d.TaskDir(id), "hostnet-network.json"))
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil {
		t.Fatalf("network state of %s: %v", id, err)
	}
	return st
}

// assertAttached checks that the container's veth is on the bridge, its
// lease and its nftables rules are there.
func (b *bridgeNet) assertAttached(t *testing.T, st netState) {
	t.Helper()
	link, err := netlink.LinkByName(st.HostIfName)
	br, brErr := netlink.LinkByName(b.name)
	if err != nil || brErr != nil || link.Attrs().MasterIndex != br.Attrs().Index {
		t.Errorf("veth %s of %s is not on bridge %s: %v, %v", st.HostIfName, st.Key, b.name, err, brErr)
	}
	var leases struct{ Leases map[netip.Addr]string }
	data, err := os.ReadFile(b.leasesFile())
	if err == nil {
		err = json.Unmarshal(data, &leases)
	}
	if err != nil || leases.Leases[st.Address] != st.Key {
		t.Errorf("lease of %s to %s is gone: %s, %v", st.Address, st.Key, data, err)
	}
	if rules := hostnetRules(t); !strings.Contains(rules, `"`+st.Key+" masquerade") {
		t.Errorf("nftables rules of %s are gone:\n%s", st.Key, rules)
	}
}

// hostnetRules is `nft list table ip hostnet`, empty without the table.
func hostnetRules(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("nft", "list", "table", "ip", "hostnet").CombinedOutput()
	if err != nil {
		return ""
	}
	return string(out)
}

// assertNoTrace checks that container id left no lease and no rule.
func (b *bridgeNet) assertNoTrace(t *testing.T, id string) {
	t.Helper()
	prefix := testDaemon.Namespace + "/" + id + "@"
	if data, _ := os.ReadFile(b.leasesFile()); strings.Contains(string(data), prefix) {
		t.Errorf("%s left a lease: %s", id, data)
	}
	if rules := hostnetRules(t); strings.Contains(rules, prefix) {
		t.Errorf("%s left nftables rules:\n%s", id, rules)
	}
}

// httpdScript serves body on port inside a container.
func httpdScript(body string, port int) []string {
	return []string{"sh", "-c", fmt.Sprintf("mkdir -p /tmp/www && echo '%s' > /tmp/www/index.html && exec httpd -f -p %d -h /tmp/www", body, port)}
}

// Issue 10, item 1: a port published on 127.0.0.1 reaches the container
// from the host (the guard against the container reaching the host's
// loopback lets the replies back in) and only there.
func TestBridgeLocalhostPublish(t *testing.T) {
	forEachBridgeRuntime(t, func(t *testing.T, v runtimeVariant, b *bridgeNet) {
		hostPort := freeLoopbackPort(t)
		const body = "published on loopback"
		b.start(t, newID(t), fmt.Sprintf("127.0.0.1:%d:8080", hostPort), httpdScript(body, 8080)...)
		getAll(t, body, fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort))
		// Not on the host's other addresses: nothing listens there.
		if c, err := net.DialTimeout("tcp4", netip.AddrPortFrom(b.gateway, uint16(hostPort)).String(), 2*time.Second); err == nil {
			c.Close()
			t.Errorf("a port published on 127.0.0.1 is reachable on %s", b.gateway)
		}
		rules := hostnetRules(t)
		if want := fmt.Sprintf(`iifname "%s" ip daddr 127.0.0.0/8 drop`, b.name); !strings.Contains(rules, want) {
			t.Errorf("no loopback guard for bridge %s (%q):\n%s", b.name, want, rules)
		}
	})
}

// Issue 10, item 2: a pod author's annotation may not DNAT the host's
// connections to an address that is not the host's: another container's,
// or one on no interface at all.
func TestBridgePublishHostIPMustBeLocal(t *testing.T) {
	b := newBridgeNet(t)
	neighbour := newID(t)
	b.start(t, neighbour, "", "sleep", "1000")
	neighbourAddr := b.leased(t, neighbour)
	for _, ports := range []string{
		fmt.Sprintf("%s:80:8080", neighbourAddr),
		"198.51.100.53:53:53/udp",
	} {
		id := newID(t)
		_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs(b.args(spec.ModeBridge, ports), id, "true")...)
		ip, _, _ := strings.Cut(ports, ":")
		for _, want := range []string{
			fmt.Sprintf("annotation %s: cannot publish port %s", spec.PortsAnnotation, ports),
			"host IP " + ip + " is not an address of this host",
			"invalid argument",
		} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("publish %s: %v; want an error containing %q", ports, err, want)
			}
		}
		removeContainer(t, id)
		b.assertNoTrace(t, id)
	}
	if rules := hostnetRules(t); strings.Contains(rules, "dnat to "+neighbourAddr.String()) {
		t.Errorf("a DNAT rule to %s exists:\n%s", neighbourAddr, rules)
	}
}

// Issue 10, item 3: a host-mode container and a bridge container cannot
// both have a host port, in either order; the error names the port and
// who holds it.
func TestHostModePortVersusBridgePublish(t *testing.T) {
	forEachBridgeRuntime(t, func(t *testing.T, v runtimeVariant, b *bridgeNet) {
		port := freeLoopbackPort(t)
		hostFlags := append([]string{"--rm", "--annotation", fmt.Sprintf("%s=%d:%d", spec.PortsAnnotation, port, port)}, v.ctrFlags()...)

		// Bridge first: the host-mode container is refused.
		publisher := newID(t)
		b.start(t, publisher, fmt.Sprintf("127.0.0.1:%d:8080", port), "sleep", "1000")
		key := readNetState(t, testDaemon, publisher).Key
		id := newID(t)
		_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs(hostFlags, id, "true")...)
		want := fmt.Sprintf("port %d/tcp is already published by bridge network container %s (127.0.0.1:%d:8080/tcp)", port, key, port)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "already exists") {
			t.Errorf("host-mode container after a bridge publish: %v; want an error containing %q", err, want)
		}
		removeContainer(t, id)
		removeContainer(t, publisher)

		// Host mode first: the bridge container is refused.
		server := newID(t)
		startCtrRunFlags(t, hostFlags[1:], server, httpdScript("host mode", port)...)
		waitListening(t, port)
		id = newID(t)
		_, err = testDaemon.CtrOutput(t.Context(), ctrRunArgs(b.args(spec.ModeBridge, fmt.Sprintf("127.0.0.1:%d:8080", port)), id, "true")...)
		want = fmt.Sprintf("port %d/tcp is already in use on the host by pid", port)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "(httpd)") {
			t.Errorf("bridge publish after a host-mode container: %v; want an error containing %q and the holder", err, want)
		}
		removeContainer(t, id)
		b.assertNoTrace(t, id)
	})
}

// waitListening polls until something accepts connections on
// 127.0.0.1:port.
func waitListening(t *testing.T, port int) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		c, err := net.DialTimeout("tcp4", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on 127.0.0.1:%d: %v", port, err)
		}
	}
}

// Issue 10, item 4: two containerds on one node, with the same namespace
// name and the same bridge settings (bridge, subnet, IPAM state, nftables
// table), each create container id. The second one's create, and its
// failure, must leave the first one's veth, rules and lease alone.
func TestBridgeSameIDInTwoContainerds(t *testing.T) {
	forEachBridgeRuntime(t, func(t *testing.T, v runtimeVariant, b *bridgeNet) {
		other := startOtherContainerd(t)
		// The other containerd's shims keep their runtime state apart, as
		// two containerds on a node must: the runtimes' state would
		// collide otherwise, whatever the network does.
		otherConfig := filepath.Join(t.TempDir(), "hostnet.toml")
		toml := b.toml + fmt.Sprintf("[runtime]\nroot = %q\n", filepath.Join(other.Dir, "runtime"))
		if v.configPath != "" {
			toml += fmt.Sprintf("binary = %q\n", v.binary)
		}
		if err := os.WriteFile(otherConfig, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}

		port := freeLoopbackPort(t)
		id := newID(t)
		const body = "served by the first containerd"
		bg := b.start(t, id, fmt.Sprintf("127.0.0.1:%d:8080", port), httpdScript(body, 8080)...)
		first := readNetState(t, testDaemon, id)
		url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
		hc := &http.Client{Timeout: 2 * time.Second}
		if got, err := getRetry(hc, url); err != nil || got != body {
			t.Fatalf("GET %s = %q, %v\nctr run: %s%s", url, got, err, bg.stdout.String(), bg.stderr.String())
		}

		run := func(ports string, args ...string) (string, error) {
			a := []string{"run", "--rm", "--fifo-dir", other.FIFODir, "--runtime", testRuntime,
				"--runtime-config-path", otherConfig, "--annotation", spec.NetworkAnnotation + "=bridge",
				// Not the first one's cgroup, /<namespace>/<id>.
				"--cgroup", "/" + other.Namespace + "/other-" + id}
			if ports != "" {
				a = append(a, "--annotation", spec.PortsAnnotation+"="+ports)
			}
			a = append(append(a, image.DefaultName, id), args...)
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			defer cancel()
			return other.CtrOutput(ctx, a...)
		}
		// The same namespace/id fails to publish the same port: it is
		// undone, and only what it made.
		_, err := run(fmt.Sprintf("127.0.0.1:%d:8080", port), "true")
		if want := fmt.Sprintf("host port %d/tcp is already published by container %s", port, first.Key); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("the other containerd's create: %v; want an error containing %q", err, want)
		}
		b.assertAttached(t, first)
		other.CtrOutput(t.Context(), "containers", "rm", id) // if ctr run left it
		// Without the port it runs beside the first one, with its own
		// address, and goes without taking anything of the first one's.
		out, err := run("", "ip", "-o", "-4", "addr", "show", "dev", "eth0")
		if err != nil {
			t.Errorf("the other containerd's container: %v", err)
		} else if addr := eth0Addr(t, out); addr == first.Address || !b.subnet.Contains(addr) {
			t.Errorf("the other containerd's container got %s; the first one has %s", addr, first.Address)
		}
		b.assertAttached(t, first)
		if got, err := getRetry(hc, url); err != nil || got != body {
			t.Errorf("the first container after the other's: GET %s = %q, %v", url, got, err)
		}
	})
}

// startOtherContainerd starts a second private containerd with the test
// daemon's namespace name, stopped when the test ends. It is told no
// runtime root to clean: the test daemon's shims use the same one.
func startOtherContainerd(t *testing.T) *daemon.Daemon {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{BinDir: binDir, Namespace: testDaemon.Namespace})
	if err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: its cgroup sweep covers the
	// namespace's cgroups, which the test daemon's containers share.
	t.Cleanup(func() {
		if err := d.Stop(); err != nil {
			t.Errorf("stop the other containerd: %v", err)
		}
	})
	if err := d.ImportImage(ctx, filepath.Join(testDaemon.Dir, "busybox.tar")); err != nil {
		t.Fatal(err)
	}
	return d
}

// Issue 10, item 5: a gateway the kernel would take as the bridge's
// address but no container could use, an IPv6 subnet given as the IPv4
// one, or bad IPv6 settings (issue 15), are refused when the config is
// read: no bridge, no address, no lease file.
func TestBridgeBadGatewayConfig(t *testing.T) {
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("bridge mode is hostnet's")
	}
	name := fmt.Sprintf("hnbad%d", os.Getpid())
	subnet := netip.MustParsePrefix(fmt.Sprintf("10.237.%d.0/24", os.Getpid()%200))
	broadcast := subnet.Addr().As4()
	broadcast[3] = 255
	for _, tc := range []struct{ bridge, want string }{
		{fmt.Sprintf("subnet = %q\ngateway = %q", subnet, netip.AddrFrom4(broadcast)),
			fmt.Sprintf("network.bridge.gateway %s is the network or broadcast address of subnet %s", netip.AddrFrom4(broadcast), subnet)},
		{fmt.Sprintf("subnet = %q\ngateway = %q", subnet, subnet.Addr()),
			fmt.Sprintf("network.bridge.gateway %s is the network or broadcast address of subnet %s", subnet.Addr(), subnet)},
		{`subnet = "fd00:89:1::/64"`, "network.bridge.subnet fd00:89:1::/64 is IPv6: set it as network.bridge.subnet6"},
		// Issue 15: bad IPv6 settings.
		{`subnet6 = "fe80::/64"`, "network.bridge.subnet6 fe80::/64 must be a unicast IPv6 subnet, such as a unique local fd00::/8 one"},
		{"subnet6 = \"fd00:89:1::/64\"\ngateway6 = \"fd00:89:1::\"", "network.bridge.gateway6 fd00:89:1:: is the subnet-router anycast address of subnet fd00:89:1::/64"},
		{"subnet6 = \"fd00:89:1::/64\"\ngateway_mode6 = \"nat66\"", `network.bridge.gateway_mode6 "nat66" must be "nat" or "routed"`},
		{`subnet = ""`, "network.bridge.subnet must be a CIDR such as 10.89.0.0/16 (or network.bridge.subnet6 an IPv6 one, for an IPv6-only bridge)"},
	} {
		config, ipamDir := filepath.Join(t.TempDir(), "hostnet.toml"), t.TempDir()
		toml := fmt.Sprintf("[network.bridge]\nname = %q\nstate_dir = %q\n%s\n", name, ipamDir, tc.bridge)
		if err := os.WriteFile(config, []byte(toml), 0o644); err != nil {
			t.Fatal(err)
		}
		id := newID(t)
		flags := []string{"--rm", "--runtime-config-path", config, "--annotation", spec.NetworkAnnotation + "=bridge"}
		_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs(flags, id, "true")...)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "invalid argument") {
			t.Errorf("config\n%s\nctr run: %v; want an invalid argument containing %q", toml, err, tc.want)
		}
		removeContainer(t, id)
		if link, err := netlink.LinkByName(name); err == nil {
			addrs, _ := netlink.AddrList(link, netlink.FAMILY_ALL)
			netlink.LinkDel(link)
			t.Errorf("config\n%s\nleft bridge %s with addresses %v", toml, name, addrs)
		} else if !errors.As(err, new(netlink.LinkNotFoundError)) {
			t.Error(err)
		}
		if entries, _ := os.ReadDir(ipamDir); len(entries) != 0 {
			t.Errorf("config\n%s\nleft IPAM state: %v", toml, entries)
		}
	}
}
