package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/spec"
)

// cniPluginSets are the plugin releases bridge mode's CNI delegation is
// tested with: Debian's package and the upstream release contrib/setup.sh
// builds (contrib/cni-plugins.sh).
// Debian's portmap 1.1.1 fails CHECK on a network without IPv6 (it looks
// for its IPv6 DNAT chain, which ADD made only for IPv4): its list sets
// "disableCheck", as CNI provides for such plugins.
var cniPluginSets = []struct {
	name, dir string
	check     bool
}{
	{"debian-1.1.1", "/usr/lib/cni", false},
	{"v1.10.0", "/var/cache/hostnet/cni-plugins-v1.10.0", true},
}

// netNSDaemon starts a containerd of the test's own in a network namespace
// of its own ("the host" of the test: the plugins' bridge, iptables rules
// and published ports live there and go with it), with the busybox image.
func netNSDaemon(t *testing.T, name string) *daemon.Daemon {
	t.Helper()
	if testRuntime != daemon.HostnetRuntime {
		t.Skip("bridge mode is hostnet's")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	d, err := daemon.Start(ctx, daemon.Config{BinDir: binDir, Namespace: fmt.Sprintf("hostnet-%s-%d", name, os.Getpid()),
		RuntimeRoots: []string{runtimeRoot}, NetNS: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(d.LogPath)
			for _, line := range strings.Split(string(data), "\n") {
				if strings.Contains(line, "level=warning") || strings.Contains(line, "level=error") {
					t.Log(line)
				}
			}
		}
		if err := d.Stop(); err != nil {
			t.Errorf("stop containerd: %v", err)
		}
	})
	if err := d.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	return d
}

// cniNet is a CNI network of the test: its configuration list, a hostnet
// config pointing at it, and what the plugins create, named per run.
type cniNet struct {
	d       *daemon.Daemon
	name    string // the network's
	bridge  string
	subnet  netip.Prefix
	dataDir string // host-local's
	config  string // hostnet's TOML
}

func newCNINet(t *testing.T, d *daemon.Daemon, pluginDir string, n int, portmap, check bool) *cniNet {
	t.Helper()
	pid := os.Getpid()
	c := &cniNet{
		d:       d,
		name:    fmt.Sprintf("hostnet-cni-%d-%d", pid, n),
		bridge:  fmt.Sprintf("hncni%dx%d", pid%1000000, n),
		subnet:  netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 237+n, pid%200)),
		dataDir: t.TempDir(),
	}
	first, last := c.subnet.Addr().As4(), c.subnet.Addr().As4()
	first[3], last[3] = 10, 100
	plugins := []any{map[string]any{
		"type": "bridge", "bridge": c.bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
		"ipam": map[string]any{"type": "host-local", "dataDir": c.dataDir, "ranges": [][]map[string]string{{{
			"subnet": c.subnet.String(), "rangeStart": netip.AddrFrom4(first).String(), "rangeEnd": netip.AddrFrom4(last).String()}}}},
	}}
	if portmap {
		plugins = append(plugins, map[string]any{"type": "portmap", "snat": true, "capabilities": map[string]bool{"portMappings": true}})
	}
	if _, err := os.Stat(filepath.Join(pluginDir, "firewall")); err == nil {
		plugins = append(plugins, map[string]any{"type": "firewall"})
	}
	conf, err := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": c.name, "plugins": plugins, "disableCheck": !check})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	conflist := filepath.Join(dir, "10-hostnet.conflist")
	c.config = filepath.Join(dir, "hostnet.toml")
	if err := os.WriteFile(conflist, conf, 0o644); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("[network]\ncni_conflist = %q\ncni_bin_dir = %q\n", conflist, pluginDir)
	if err := os.WriteFile(c.config, []byte(toml), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h, err := d.Netlink()
		if err != nil {
			t.Error(err)
			return
		}
		defer h.Close()
		if link, err := h.LinkByName(c.bridge); err == nil {
			if err := h.LinkDel(link); err != nil {
				t.Errorf("delete bridge %s: %v", c.bridge, err)
			}
		}
	})
	return c
}

// runArgs are `ctr run` arguments for a bridge-mode container on the
// network.
func (c *cniNet) runArgs(flags []string, ports, id string, args ...string) []string {
	a := append([]string{"run", "--runtime", daemon.HostnetRuntime, "--runtime-config-path", c.config,
		"--annotation", spec.NetworkAnnotation + "=bridge"}, flags...)
	if ports != "" {
		a = append(a, "--annotation", spec.PortsAnnotation+"="+ports)
	}
	return append(append(a, image.DefaultName, id), args...)
}

func (c *cniNet) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	return c.d.CtrOutput(ctx, args...)
}

// remove deletes container id, whatever state it is in.
func (c *cniNet) remove(t *testing.T, id string) {
	t.Helper()
	c.ctr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	c.ctr(t, "tasks", "delete", "--force", id)
	if out, _ := c.ctr(t, "containers", "ls", "--quiet"); strings.Contains("\n"+out, "\n"+id+"\n") {
		if out, err := c.ctr(t, "containers", "delete", id); err != nil {
			t.Errorf("delete container %s: %v: %s", id, err, out)
		}
	}
}

// leases are host-local's: the files named by an address.
func (c *cniNet) leases(t *testing.T) map[netip.Addr]string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(c.dataDir, c.name))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	out := map[netip.Addr]string{}
	for _, e := range entries {
		if a, err := netip.ParseAddr(e.Name()); err == nil {
			data, _ := os.ReadFile(filepath.Join(c.dataDir, c.name, e.Name()))
			out[a] = string(data)
		}
	}
	return out
}

// waitRunning waits for id's task to run and returns its pid.
func (c *cniNet) waitRunning(t *testing.T, id string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := c.ctr(t, "tasks", "ls")
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); err == nil && len(f) == 3 && f[0] == id && f[2] == "RUNNING" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s not running: %s %v", id, out, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBridgeCNI: with network.cni_conflist, bridge mode runs the list's
// plugins (bridge, host-local, portmap, firewall) instead of the built-in
// bridge, with Debian's 1.1.1 plugins and upstream v1.10.0: the container
// gets an address from the list's subnet and lo; it is reachable from the
// host, from another container, and on its published port on 127.0.0.1
// (portmap's portMappings capability); delete runs DEL, which removes the
// veth, the lease and the plugins' rules, also after the shim was killed;
// CHECK runs at start and fails a container whose network broke since
// create.
func TestBridgeCNI(t *testing.T) {
	d := netNSDaemon(t, "cni")
	for i, ps := range cniPluginSets {
		t.Run(ps.name, func(t *testing.T) {
			if _, err := os.Stat(filepath.Join(ps.dir, "portmap")); err != nil {
				t.Fatalf("CNI plugins %s: %v (contrib/setup.sh installs them)", ps.name, err)
			}
			testBridgeCNI(t, newCNINet(t, d, ps.dir, i, true, ps.check), ps.check)
		})
	}
}

func testBridgeCNI(t *testing.T, c *cniNet, check bool) {
	const hostPort = 18080
	// A first container creates what the plugins share between containers
	// (the bridge, portmap's and firewall's top chains); what is there
	// after it is gone is the baseline the others must return to.
	if out, err := c.ctr(t, c.runArgs([]string{"--rm"}, fmt.Sprintf("127.0.0.1:%d:80", hostPort), "cni-first", "true")...); err != nil {
		t.Fatalf("first container: %v: %s", err, out)
	}
	before, err := hoststate.Take(c.d.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hoststate.Restore(before); err != nil {
			t.Errorf("restore the test's host netns: %v", err)
		}
	})
	if l := c.leases(t); len(l) > 0 {
		t.Errorf("leases left by a deleted container: %v", l)
	}

	// The server, published on the test host's 127.0.0.1.
	const body = "hello from a CNI container"
	id := "cni-server"
	t.Cleanup(func() { c.remove(t, id) })
	if out, err := c.ctr(t, c.runArgs([]string{"--detach"}, fmt.Sprintf("127.0.0.1:%d:8080", hostPort), id, "sh", "-c",
		fmt.Sprintf("mkdir -p /tmp/www && echo '%s' > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www", body))...); err != nil {
		t.Fatalf("run %s: %v: %s", id, err, out)
	}
	c.waitRunning(t, id)
	leases := c.leases(t)
	if len(leases) != 1 {
		t.Fatalf("leases: %v, want the server's", leases)
	}
	var addr netip.Addr
	for a := range leases {
		addr = a
	}
	if !c.subnet.Contains(addr) {
		t.Errorf("leased %s, outside the list's subnet %s", addr, c.subnet)
	}

	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: c.d.DialContext, DisableKeepAlives: true}}
	for _, url := range []string{
		fmt.Sprintf("http://%s/index.html", netip.AddrPortFrom(addr, 8080)), // host to container
		fmt.Sprintf("http://127.0.0.1:%d/index.html", hostPort),             // published (portmap)
	} {
		if got, err := getRetry(hc, url); err != nil || got != body {
			t.Errorf("GET %s from the host = %q, %v; want %q", url, got, err, body)
		}
	}
	// Another container on the network: its address, lo up, and the
	// server through the bridge.
	out, err := c.ctr(t, c.runArgs([]string{"--rm"}, "", "cni-client", "sh", "-c",
		fmt.Sprintf("ip -o -4 addr show dev eth0; ip -o link show lo; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s 8080", addr))...)
	if err != nil {
		t.Errorf("client container: %v: %s", err, out)
	}
	if a := eth0Addr(t, out); !c.subnet.Contains(a) || a == addr {
		t.Errorf("client container's eth0 has %s, want another address in %s", a, c.subnet)
	}
	if !strings.Contains(out, "state UNKNOWN") && !strings.Contains(out, ",UP") {
		t.Errorf("lo is not up in the container:\n%s", out)
	}
	if !strings.Contains(out, body) {
		t.Errorf("container to container: %q, want %q", out, body)
	}

	c.remove(t, id)
	assertCNIGone(t, c, before)

	// The shim killed under a running container: containerd's `shim
	// delete` runs DEL from what the bundle holds.
	id = "cni-killed"
	t.Cleanup(func() { c.remove(t, id) })
	if out, err := c.ctr(t, c.runArgs([]string{"--detach"}, fmt.Sprintf("127.0.0.1:%d:80", hostPort), id, "sleep", "1000")...); err != nil {
		t.Fatalf("run %s: %v: %s", id, err, out)
	}
	c.waitRunning(t, id)
	if len(c.leases(t)) != 1 {
		t.Fatalf("leases: %v, want %s's", c.leases(t), id)
	}
	shims, err := c.d.ShimPids()
	if err != nil || shims[id] == 0 {
		t.Fatalf("shim of %s: %v, %v", id, shims, err)
	}
	if err := syscall.Kill(shims[id], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if !daemon.WaitGone(shims[id], 10*time.Second) {
		t.Fatalf("shim %d survived SIGKILL", shims[id])
	}
	c.remove(t, id)
	assertCNIGone(t, c, before)

	// CHECK at start: a container whose lease went away between create
	// and start is refused, unless the list disables CHECK; its delete
	// still cleans up.
	testCNICheck(t, c, check)
	assertCNIGone(t, c, before)
}

// assertCNIGone checks that the test host is as before (no veth, address,
// route, iptables or nftables rule of a container left) and that no lease
// is. After a shim died, containerd runs `shim delete` in the background
// and `ctr tasks delete` may return first: that is waited for.
func assertCNIGone(t *testing.T, c *cniNet, before *hoststate.State) {
	t.Helper()
	var left []string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		left = nil
		for a, owner := range c.leases(t) {
			left = append(left, fmt.Sprintf("+ lease %s %q", a, owner))
		}
		now, err := hoststate.Take(before.NetNS)
		if err != nil {
			t.Fatal(err)
		}
		left = append(left, hoststate.Diff(before, now)...)
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(left) > 0 {
		t.Errorf("left after delete:\n%s", strings.Join(left, "\n"))
	}
}

func testCNICheck(t *testing.T, c *cniNet, check bool) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, err := c.d.Client()
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	img, err := cl.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	id := "cni-check"
	ctn, err := cl.NewContainer(ctx, id,
		client.WithRuntime(daemon.HostnetRuntime, &runtimeoptions.Options{ConfigPath: c.config}),
		client.WithNewSnapshot(id, img),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sleep", "1000"),
			oci.WithAnnotations(map[string]string{spec.NetworkAnnotation: "bridge"})))
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := ctn.Delete(context.WithoutCancel(ctx), client.WithSnapshotCleanup); err != nil {
			t.Errorf("delete %s: %v", id, err)
		}
	}()
	task, err := ctn.NewTask(ctx, cio.NullIO)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if _, err := task.Delete(context.WithoutCancel(ctx), client.WithProcessKill); err != nil {
			t.Errorf("delete task %s: %v", id, err)
		}
	}()
	// host-local's lease: its CHECK finds the address gone.
	leases := c.leases(t)
	if len(leases) != 1 {
		t.Fatalf("leases: %v, want %s's", leases, id)
	}
	for a := range leases {
		if err := os.Remove(filepath.Join(c.dataDir, c.name, a.String())); err != nil {
			t.Fatal(err)
		}
	}
	err = task.Start(ctx)
	if !check {
		if err != nil {
			t.Errorf("start of a list with disableCheck: %v", err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), "CHECK") || !strings.Contains(err.Error(), c.name) {
		t.Errorf("start with the lease gone: %v, want CNI's CHECK of %s to fail it", err, c.name)
	}
}

// TestBridgeCNIRefused: what cannot work is refused at create, naming what
// to fix: ports with no plugin taking portMappings, and a broken list.
func TestBridgeCNIRefused(t *testing.T) {
	d := netNSDaemon(t, "cnirefused")
	c := newCNINet(t, d, "/usr/lib/cni", 2, false, true)
	out, err := c.ctr(t, c.runArgs([]string{"--rm"}, "18081:80", "cni-noportmap", "true")...)
	if err == nil || !strings.Contains(out+err.Error(), "none of its plugins takes the portMappings capability") {
		t.Errorf("ports without portmap: %v: %s, want it refused", err, out)
	}
	// Without ports the list works.
	if out, err := c.ctr(t, c.runArgs([]string{"--rm"}, "", "cni-noports", "ip", "-o", "-4", "addr", "show", "dev", "eth0")...); err != nil {
		t.Errorf("no ports: %v: %s", err, out)
	} else if a := eth0Addr(t, out); !c.subnet.Contains(a) {
		t.Errorf("eth0 has %s, want an address in %s", a, c.subnet)
	}
	broken := filepath.Join(t.TempDir(), "broken.conflist")
	if err := os.WriteFile(broken, []byte(`{"cniVersion": "1.0.0", "name": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(c.config, fmt.Appendf(nil, "[network]\ncni_conflist = %q\n", broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err = c.ctr(t, c.runArgs([]string{"--rm"}, "", "cni-broken", "true")...)
	if err == nil || !strings.Contains(out+err.Error(), "invalid CNI configuration list "+broken) {
		t.Errorf("broken list: %v: %s, want an error naming %s", err, out, broken)
	}
	if l := c.leases(t); len(l) > 0 {
		t.Errorf("leases left: %v", l)
	}
}
