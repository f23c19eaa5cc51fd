package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/hoststate"
	"github.com/hostnet-dev/hostnet/shim/inspect"
	hostnetns "github.com/hostnet-dev/hostnet/shim/network/netns"
)

// TestBridgeForwardDrop: on a host whose iptables FORWARD policy is DROP
// (Docker sets it), the built-in bridge still passes its containers'
// forwarded traffic, and only theirs: a container reaches a machine beyond
// the host, that machine reaches the container's published port, two
// containers on the bridge reach each other (bridged frames go through
// FORWARD with br_netfilter), but the container's unpublished port stays
// closed to that machine. Once the containers are gone the host's rules
// are as before. Both iptables flavours; containerd runs in a network
// namespace of the test's ("the host"), and "the machine beyond" is another
// namespace on a veth from it.
func TestBridgeForwardDrop(t *testing.T) {
	for i, flavour := range []string{"iptables-nft", "iptables-legacy"} {
		t.Run(flavour, func(t *testing.T) {
			if _, err := os.Stat("/usr/sbin/" + flavour); err != nil {
				t.Skipf("%s: %v", flavour, err)
			}
			testForwardDrop(t, flavour, false, i)
		})
	}
}

// TestBridgeForwardDrop6 is TestBridgeForwardDrop over IPv6, on a
// dual-stack bridge whose host has an ip6tables FORWARD policy of DROP:
// the same four paths over IPv6 only, the published port reached on an
// IPv6 address of the test's host namespace.
func TestBridgeForwardDrop6(t *testing.T) {
	for i, flavour := range []string{"ip6tables-nft", "ip6tables-legacy"} {
		t.Run(flavour, func(t *testing.T) {
			if _, err := os.Stat("/usr/sbin/" + flavour); err != nil {
				t.Skipf("%s: %v", flavour, err)
			}
			testForwardDrop(t, flavour, true, 2+i)
		})
	}
}

// testForwardDrop sets flavour's FORWARD policy to DROP in a host
// namespace of its own and checks the paths over IPv6 with v6 (on a
// dual-stack bridge), else IPv4. n tells the subtests' names apart.
func testForwardDrop(t *testing.T, flavour string, v6 bool, n int) {
	d := netNSDaemon(t, fmt.Sprintf("fwddrop%d", n))
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	pid := os.Getpid()
	if out, err := d.InNetNS(ctx, flavour, "-w", "-P", "FORWARD", "DROP").CombinedOutput(); err != nil {
		t.Fatalf("%s -P FORWARD DROP: %v: %s", flavour, err, out)
	}

	// The machine beyond: a namespace on a veth from the host, on a /30
	// and, with v6, a /64 of the run's own unique local prefix.
	remoteNS := filepath.Join(t.TempDir(), "remote")
	if err := hostnetns.Create(remoteNS); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostnetns.Remove(remoteNS) })
	ula := fmt.Sprintf("fd68:6e%02x:%04x", (pid>>16)&0xff, pid&0xffff) // RFC 4193 global ID from the pid
	link := netip.MustParsePrefix(fmt.Sprintf("10.241.%d.0/30", pid%200))
	links := []netip.Prefix{link}
	if v6 {
		// The host forwards IPv6 only with all.forwarding, which hostnet
		// never sets (it would stop the host taking router
		// advertisements); this host is the test's namespace, which goes
		// with the test, so the test sets it as the host's admin would.
		if out, err := d.InNetNS(ctx, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1").CombinedOutput(); err != nil {
			t.Fatalf("net.ipv6.conf.all.forwarding=1 in the test's host netns: %v: %s", err, out)
		}
		links = append(links, netip.MustParsePrefix(fmt.Sprintf("%s:f%d::/64", ula, n)))
	}
	var hostAddr, remoteAddr netip.Addr
	for _, l := range links {
		hostAddr, remoteAddr = l.Addr().Next(), l.Addr().Next().Next()
	}
	connectRemote(t, d, remoteNS, fmt.Sprintf("hnfwd%dr%d", pid%1000000, n), links)

	b := &bridgeNet{
		name:    fmt.Sprintf("hnfwd%dx%d", pid%1000000, n),
		subnet:  netip.MustParsePrefix(fmt.Sprintf("10.%d.%d.0/24", 242+n, pid%200)),
		ipamDir: t.TempDir(),
	}
	b.gateway = b.subnet.Addr().Next()
	b.config = filepath.Join(t.TempDir(), "hostnet.toml")
	b.toml = fmt.Sprintf("[network.bridge]\nname = %q\nsubnet = %q\nstate_dir = %q\n", b.name, b.subnet, b.ipamDir)
	subnet, leases := b.subnet, b.leasesFile
	if v6 {
		b.subnet6 = netip.MustParsePrefix(fmt.Sprintf("%s:%d::/64", ula, n))
		b.gateway6 = b.subnet6.Addr().Next()
		b.toml += fmt.Sprintf("subnet6 = %q\n", b.subnet6)
		subnet, leases = b.subnet6, b.leasesFile6
	}
	if err := os.WriteFile(b.config, []byte(b.toml), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &cniNet{d: d, config: b.config}
	before, err := hoststate.Take(d.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := hoststate.Restore(before); err != nil {
			t.Errorf("restore the test's host netns: %v", err)
		}
	})

	const hostPort = 18090
	const body = "hello through FORWARD DROP"
	id := "fwd-server"
	t.Cleanup(func() { c.remove(t, id) })
	if out, err := c.ctr(t, c.runArgs([]string{"--detach"}, fmt.Sprintf("%d:8080", hostPort), id, "sh", "-c",
		fmt.Sprintf("mkdir -p /tmp/www && echo '%s' > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www", body))...); err != nil {
		t.Fatalf("run %s: %v: %s", id, err, out)
	}
	c.waitRunning(t, id)
	addr := onlyLease(t, leases())

	// The machine beyond to the published port, on the host's address
	// (of the family under test: a publish without a host IP has both).
	get := func(target netip.AddrPort) (string, error) {
		conn, err := dialIn(ctx, remoteNS, target.String())
		if err != nil {
			return "", err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(conn, "GET /index.html HTTP/1.0\r\n\r\n")
		out, err := io.ReadAll(conn)
		return string(out), err
	}
	var got string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if got, err = get(netip.AddrPortFrom(hostAddr, hostPort)); (err == nil && strings.Contains(got, body)) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil || !strings.Contains(got, body) {
		t.Errorf("beyond the host to the published port %s: %q, %v", netip.AddrPortFrom(hostAddr, hostPort), got, err)
	}
	// ... but not to the container's own address and port, which are not
	// published (the machine beyond routes the subnet through the host).
	addRoute(t, remoteNS, subnet, hostAddr)
	if got, err := get(netip.AddrPortFrom(addr, 8080)); err == nil {
		t.Errorf("beyond the host to the unpublished %s: %q, want it dropped by the FORWARD policy", netip.AddrPortFrom(addr, 8080), got)
	}

	// The container to the machine beyond.
	ln, err := listenIn(remoteNS, netip.AddrPortFrom(remoteAddr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(conn, "beyond\n")
			conn.Close()
		}
	}()
	lport := ln.Addr().(*net.TCPAddr).Port
	out, err := c.ctr(t, c.runArgs([]string{"--rm"}, "", "fwd-client", "sh", "-c",
		fmt.Sprintf("nc -w 5 %s %d; printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 %s 8080", remoteAddr, lport, addr))...)
	if err != nil {
		t.Errorf("client container: %v: %s", err, out)
	}
	if !strings.Contains(out, "beyond") {
		t.Errorf("container to the machine beyond %s: %q", remoteAddr, out)
	}
	if !strings.Contains(out, body) {
		t.Errorf("container to container %s on the bridge: %q", addr, out)
	}
	if policy, err := d.InNetNS(ctx, flavour, "-w", "-S", "FORWARD").Output(); err != nil || !strings.Contains(string(policy), "-P FORWARD DROP") {
		t.Errorf("FORWARD policy: %s, %v", policy, err)
	}

	// hostnet doctor in that host reports the policy, covered.
	cmdName, flavourName, _ := strings.Cut(flavour, "-")
	if flavourName == "nft" {
		flavourName = "nf_tables"
	}
	doctor := d.InNetNS(ctx, filepath.Join(binDir, "hostnet"), "--state", d.State, "doctor", "--json")
	doctor.Env = append(withoutEnvVar(doctor.Env, "HOSTNET_CONFIG"), "HOSTNET_CONFIG="+b.config)
	var findings []inspect.Finding
	report, err := doctor.Output() // its exit status is of checks not this test's
	if jerr := json.Unmarshal(report, &findings); jerr != nil {
		t.Fatalf("hostnet doctor: %v, %v: %s", err, jerr, report)
	}
	wantStatus(t, findings, "forward-policy", fmt.Sprintf("%s (%s) FORWARD policy DROP: covered", cmdName, flavourName), inspect.StatusOK)

	c.remove(t, id)
	delBridge(t, d, b.name)
	diff, err := hoststate.Changed(before)
	if err != nil {
		t.Fatal(err)
	}
	if len(diff) > 0 {
		t.Errorf("left in the test host's network namespace:\n%s", strings.Join(diff, "\n"))
	}
}

// onlyLease is the one address the IPAM state file leases.
func onlyLease(t *testing.T, file string) netip.Addr {
	t.Helper()
	var st struct{ Leases map[netip.Addr]string }
	data, err := os.ReadFile(file)
	if err == nil {
		err = json.Unmarshal(data, &st)
	}
	if err != nil || len(st.Leases) != 1 {
		t.Fatalf("leases in %s: %s, %v", file, data, err)
	}
	for a := range st.Leases {
		return a
	}
	return netip.Addr{}
}

func delBridge(t *testing.T, d *daemon.Daemon, name string) {
	t.Helper()
	h, err := d.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if l, err := h.LinkByName(name); err == nil {
		if err := h.LinkDel(l); err != nil {
			t.Errorf("delete bridge %s: %v", name, err)
		}
	}
}

// connectRemote links the daemon's namespace to remote with a veth pair,
// on each of links: the host side gets its first address, remote the
// second.
func connectRemote(t *testing.T, d *daemon.Daemon, remote, name string, links []netip.Prefix) {
	t.Helper()
	h, err := d.Netlink()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	rns, err := netns.GetFromPath(remote)
	if err != nil {
		t.Fatal(err)
	}
	defer rns.Close()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: "eth0", PeerNamespace: netlink.NsFd(rns)}
	if err := h.LinkAdd(veth); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if h, err := d.Netlink(); err == nil {
			if l, err := h.LinkByName(name); err == nil {
				h.LinkDel(l)
			}
			h.Close()
		}
	})
	l, err := h.LinkByName(name)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range links {
		if err := h.AddrAdd(l, linkAddr(p, p.Addr().Next())); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		t.Fatal(err)
	}
	rh, err := netlink.NewHandleAt(rns)
	if err != nil {
		t.Fatal(err)
	}
	defer rh.Close()
	for _, name := range []string{"eth0", "lo"} {
		rl, err := rh.LinkByName(name)
		if err == nil {
			err = rh.LinkSetUp(rl)
		}
		if err != nil {
			t.Fatal(err)
		}
		if name == "eth0" {
			for _, p := range links {
				if err := rh.AddrAdd(rl, linkAddr(p, p.Addr().Next().Next())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	// The kernel adds an IPv6 address's local route (and, forwarding, the
	// prefix's anycast one) once the veth's carrier is up, after the
	// address: wait for them, so that a state taken next has them.
	for _, p := range links {
		if !p.Addr().Is6() {
			continue
		}
		for _, dst := range []netip.Addr{p.Addr().Next(), p.Masked().Addr()} {
			filter := &netlink.Route{Table: unix.RT_TABLE_LOCAL, Dst: &net.IPNet{IP: dst.AsSlice(), Mask: net.CIDRMask(128, 128)}}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				rs, err := h.RouteListFiltered(netlink.FAMILY_V6, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_DST)
				if err == nil && len(rs) > 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no local route to %s on %s: %v", dst, name, err)
				}
			}
		}
	}
}

// linkAddr is addr on link p; an IPv6 one skips duplicate address
// detection, so that it is usable at once.
func linkAddr(p netip.Prefix, addr netip.Addr) *netlink.Addr {
	a := &netlink.Addr{IPNet: &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(p.Bits(), addr.BitLen())}}
	if addr.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return a
}

func addRoute(t *testing.T, ns string, dst netip.Prefix, via netip.Addr) {
	t.Helper()
	h, err := nsHandle(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Dst: &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}, Gw: via.AsSlice()}); err != nil {
		t.Fatal(err)
	}
}

func nsHandle(path string) (*netlink.Handle, error) {
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// inNS runs f on a thread in the namespace at path; a thread that cannot
// return stays locked and ends with its goroutine.
func inNS(path string, f func()) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			errc <- err
			return
		}
		f()
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		errc <- nil
	}()
	return <-errc
}

func dialIn(ctx context.Context, path, addr string) (conn net.Conn, err error) {
	if nsErr := inNS(path, func() {
		d := net.Dialer{Timeout: 3 * time.Second}
		conn, err = d.DialContext(ctx, "tcp", addr)
	}); nsErr != nil {
		return nil, nsErr
	}
	return conn, err
}

func listenIn(path, addr string) (ln net.Listener, err error) {
	if nsErr := inNS(path, func() { ln, err = net.Listen("tcp", addr) }); nsErr != nil {
		return nil, nsErr
	}
	return ln, err
}
