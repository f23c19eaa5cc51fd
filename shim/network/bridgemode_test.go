package network

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/network/bridge"
	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
	"github.com/hostnet-dev/hostnet/spec"
)

var utsNS = specs.LinuxNamespace{Type: specs.UTSNamespace}

// bridgeNetwork is a bridge network unique to this test process: its own
// bridge, subnet, IPAM directory and nftables table, all removed by
// t.Cleanup. bits is the subnet's length.
func bridgeNetwork(t testing.TB, bits int) config.Network {
	t.Helper()
	pid := os.Getpid()
	subnet := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 235, byte(pid % 100), 0}), bits)
	n := config.Network{
		DefaultMode: spec.ModeBridge,
		Bridge: config.Bridge{
			Name:     fmt.Sprintf("hnt%dn", pid),
			Subnet:   subnet,
			Gateway:  subnet.Addr().Next(),
			MTU:      1500,
			StateDir: t.TempDir(),
		},
	}
	saved := natTable
	natTable = nat.Table{Name: fmt.Sprintf("hnt%d", pid), LockDir: t.TempDir()}
	t.Cleanup(func() {
		natTable = saved
		if err := (bridge.Bridge{Name: n.Bridge.Name}).Delete(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// bridgeBundle writes a bundle whose spec asks for its own network
// namespace, and tears the network down on cleanup even if the test failed.
func bridgeBundle(t testing.TB, n config.Network, id, ports string) Request {
	t.Helper()
	s := newSpec("", pidNS, newNet, utsNS)
	if ports != "" {
		s.Annotations = map[string]string{spec.PortsAnnotation: ports}
	}
	dir, _ := writeBundle(t, s)
	r := Request{Bundle: bundle.New(dir), ID: id, Namespace: "test", Config: n}
	t.Cleanup(func() {
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			t.Error(err)
		}
	})
	return r
}

// serve answers every TCP connection with name, from inside the netns.
func serve(t *testing.T, nsPath, name string, port int) {
	t.Helper()
	var ln net.Listener
	err := netns.Do(nsPath, func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", port)) // both families
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	answer(t, ln, name)
}

// answer writes name to every connection ln accepts until the test ends.
func answer(t *testing.T, ln net.Listener, name string) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintln(c, name)
			c.Close()
		}
	}()
}

// fetch dials addr, from inside nsPath unless it is empty, and returns the
// line the server sent.
func fetch(nsPath string, addr netip.AddrPort) (string, error) {
	var c net.Conn
	dial := func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), 3*time.Second)
		return err
	}
	var err error
	if nsPath == "" {
		err = dial()
	} else {
		err = netns.Do(nsPath, dial)
	}
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

func TestBridgeMode(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 24)
	hostPort := uint16(20000 + os.Getpid()%10000)
	ra := bridgeBundle(t, n, "a", fmt.Sprintf("%d:8080", hostPort))
	rb := bridgeBundle(t, n, "b", "")

	var addrs []netip.Addr
	for _, r := range []Request{ra, rb} {
		res, err := prepare(r)
		if err != nil || res.Mode != spec.ModeBridge {
			t.Fatalf("Prepare %s = %+v, %v", r.ID, res, err)
		}
		_, s := readBack(t, r.Bundle.Path)
		ns, _ := spec.NetworkNamespace(s)
		if ns.Path != r.Bundle.NetNS() {
			t.Errorf("%s joins netns %q, want the bundle's", r.ID, ns.Path)
		}
		if s.Hostname != r.ID {
			t.Errorf("%s hostname = %q", r.ID, s.Hostname)
		}
		mounts := map[string]string{}
		for _, m := range s.Mounts {
			mounts[m.Destination] = m.Source
		}
		if mounts["/etc/hosts"] != r.Bundle.Hosts() || mounts["/etc/resolv.conf"] != r.Bundle.ResolvConf() {
			t.Errorf("%s mounts = %v", r.ID, mounts)
		}
		hosts, _ := os.ReadFile(r.Bundle.Hosts())
		f := strings.Fields(string(hosts))
		addr, err := netip.ParseAddr(f[len(f)-2])
		if err != nil || !n.Bridge.Subnet.Contains(addr) || f[len(f)-1] != r.ID {
			t.Fatalf("%s hosts file:\n%s", r.ID, hosts)
		}
		addrs = append(addrs, addr)
	}
	if addrs[0] == addrs[1] {
		t.Fatalf("both containers got %s", addrs[0])
	}
	nsA, nsB := ra.Bundle.NetNS(), rb.Bundle.NetNS()
	gw := n.Bridge.Gateway

	serve(t, nsA, "a", 8080)
	serve(t, nsB, "b", 8080)
	var hostLn net.Listener
	hostLn, err := net.Listen("tcp4", netip.AddrPortFrom(gw, 0).String()) // on our bridge only
	if err != nil {
		t.Fatal(err)
	}
	hostLn.Close()
	gwPort := netip.MustParseAddrPort(hostLn.Addr().String()).Port()
	serveHost(t, netip.AddrPortFrom(gw, gwPort))

	for _, tc := range []struct {
		name string
		from string
		to   netip.AddrPort
		want string
	}{
		{"b to a", nsB, netip.AddrPortFrom(addrs[0], 8080), "a"},
		{"a to b", nsA, netip.AddrPortFrom(addrs[1], 8080), "b"},
		{"a to gateway", nsA, netip.AddrPortFrom(gw, gwPort), "host"},
		{"host to a", "", netip.AddrPortFrom(addrs[0], 8080), "a"},
		{"host 127.0.0.1 published", "", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), hostPort), "a"},
		{"host gateway published", "", netip.AddrPortFrom(gw, hostPort), "a"},
		{"b via host published", nsB, netip.AddrPortFrom(gw, hostPort), "a"},
		{"a hairpin", nsA, netip.AddrPortFrom(gw, hostPort), "a"},
	} {
		if got, err := fetch(tc.from, tc.to); err != nil || got != tc.want {
			t.Errorf("%s: %s answered %q, %v; want %q", tc.name, tc.to, got, err, tc.want)
		}
	}
	if err := nstest.Ping(nsA, gw); err != nil {
		t.Errorf("ping gateway: %v", err)
	}

	for _, r := range []Request{ra, rb} {
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			t.Fatal(err)
		}
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			t.Errorf("second Teardown: %v", err)
		}
	}
	checkNothingLeft(t, n, ra, rb)
}

func serveHost(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	answer(t, ln, "host")
}

// checkNothingLeft verifies that the requests left no veth, netns mount,
// lease, nftables rule or state file behind.
func checkNothingLeft(t *testing.T, n config.Network, reqs ...Request) {
	t.Helper()
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for _, r := range reqs {
		key := attachmentKey(r)
		if _, err := netlink.LinkByName(hostIfName(key)); err == nil {
			t.Errorf("%s: veth %s left", key, hostIfName(key))
		}
		for _, path := range []string{r.Bundle.NetNS(), r.Bundle.Hosts(), r.Bundle.ResolvConf()} {
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s: %s left in the bundle (%v)", key, path, err)
			}
		}
		if err := r.Bundle.ReadNetwork(&attachment{}); !os.IsNotExist(err) {
			t.Errorf("%s: network state left in the bundle (%v)", key, err)
		}
		if strings.Contains(string(mountinfo), r.Bundle.NetNS()) {
			t.Errorf("%s: netns still mounted", key)
		}
	}
	for _, sub := range []struct {
		subnet  netip.Prefix
		gateway netip.Addr
	}{{n.Bridge.Subnet, n.Bridge.Gateway}, {n.Bridge.Subnet6, n.Bridge.Gateway6}} {
		if !sub.subnet.IsValid() {
			continue
		}
		alloc, err := ipam.New(n.Bridge.StateDir, sub.subnet, sub.gateway)
		if err != nil {
			t.Fatal(err)
		}
		if leases, err := alloc.Leases(); err != nil || len(leases) != 0 {
			t.Errorf("leases of %s left: %v, %v", sub.subnet, leases, err)
		}
	}
	if keys, err := natTable.Keys(); err != nil || len(keys) != 0 {
		t.Errorf("nftables rules left: %v, %v", keys, err)
	}
}

func TestBridgeModeFailuresUndo(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 30) // room for one container
	hostPort := uint16(20000 + os.Getpid()%10000)
	first := bridgeBundle(t, n, "first", fmt.Sprintf("%d:80", hostPort))
	if _, err := prepare(first); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id, ports string
		wantErr   error
		mention   string
	}{
		{"full", "", errdefs.ErrResourceExhausted, "no free address in subnet " + n.Bridge.Subnet.String()},
		{"malformed", "80", errdefs.ErrInvalidArgument, `invalid port mapping "80"`},
	} {
		r := bridgeBundle(t, n, tc.id, tc.ports)
		before, _ := readBack(t, r.Bundle.Path)
		_, err := prepare(r)
		if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("%s: Prepare error %v, want %v mentioning %q", tc.id, err, tc.wantErr, tc.mention)
		}
		if after, _ := readBack(t, r.Bundle.Path); string(after) != string(before) {
			t.Errorf("%s: config.json changed although Prepare failed", tc.id)
		}
		checkNothingLeftFor(t, r)
	}

	// A host process listening on the published port is named, not shadowed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	busy := ln.Addr().(*net.TCPAddr).Port
	r := bridgeBundle(t, n, "hostbusy", fmt.Sprintf("%d:80", busy))
	_, err = prepare(r)
	ln.Close()
	if want := fmt.Sprintf("port %d/tcp is already in use on the host by pid %d", busy, os.Getpid()); !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), want) {
		t.Errorf("host listener on the published port: err = %v, want %q", err, want)
	}
	checkNothingLeftFor(t, r)

	// A port conflict fails in the last step, after the lease, netns and
	// veth exist: all of them must go.
	if err := Teardown(context.Background(), first.Bundle); err != nil {
		t.Fatal(err)
	}
	holder := bridgeBundle(t, n, "holder", fmt.Sprintf("%d:80", hostPort))
	holder.Config.Bridge.Subnet = netip.MustParsePrefix(fmt.Sprintf("10.235.%d.0/24", 100+os.Getpid()%100))
	holder.Config.Bridge.Gateway = holder.Config.Bridge.Subnet.Addr().Next()
	holder.Config.Bridge.Name = n.Bridge.Name + "h"
	t.Cleanup(func() { bridge.Bridge{Name: holder.Config.Bridge.Name}.Delete() })
	if _, err := prepare(holder); err != nil {
		t.Fatal(err)
	}
	r = bridgeBundle(t, n, "conflict", fmt.Sprintf("%d:81", hostPort))
	_, err = prepare(r)
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "already published by container test/holder") {
		t.Errorf("port conflict: %v", err)
	}
	checkNothingLeftFor(t, r)
	if err := Teardown(context.Background(), holder.Bundle); err != nil {
		t.Fatal(err)
	}
	checkNothingLeft(t, n, first, r)
}

// attached reads the attachment Prepare recorded in the bundle.
func attached(t *testing.T, r Request) attachment {
	t.Helper()
	var a attachment
	if err := r.Bundle.ReadNetwork(&a); err != nil {
		t.Fatalf("network state of %s: %v", r.ID, err)
	}
	return a
}

func checkNothingLeftFor(t *testing.T, r Request) {
	t.Helper()
	key := attachmentKey(r)
	if _, err := netlink.LinkByName(hostIfName(key)); err == nil {
		t.Errorf("%s: veth left", key)
	}
	if _, err := os.Stat(r.Bundle.NetNS()); !os.IsNotExist(err) {
		t.Errorf("%s: netns left", key)
	}
	if err := r.Bundle.ReadNetwork(&attachment{}); !os.IsNotExist(err) {
		t.Errorf("%s: state file left", key)
	}
	b := r.Config.Bridge
	for _, sub := range []struct {
		subnet  netip.Prefix
		gateway netip.Addr
	}{{b.Subnet, b.Gateway}, {b.Subnet6, b.Gateway6}} {
		if !sub.subnet.IsValid() {
			continue
		}
		alloc, err := ipam.New(b.StateDir, sub.subnet, sub.gateway)
		if err != nil {
			t.Fatal(err)
		}
		leases, _ := alloc.Leases()
		for addr, k := range leases {
			if k == key {
				t.Errorf("%s: lease of %s left", key, addr)
			}
		}
	}
}

func TestBridgeModeKeepsJoinedNetNS(t *testing.T) {
	n := bridgeNetwork(t, 24)
	dir, before := writeBundle(t, newSpec("", joinNet))
	res, err := prepare(Request{Bundle: bundle.New(dir), ID: "pod", Namespace: "test", Config: n})
	if err != nil || res.Mode != spec.ModeBridge {
		t.Fatalf("Prepare = %+v, %v", res, err)
	}
	if after, _ := readBack(t, dir); string(after) != string(before) {
		t.Error("a spec joining a pod's netns was rewritten")
	}
}

// BenchmarkAttachDetach is one container's Prepare + Teardown.
func BenchmarkAttachDetach(b *testing.B) {
	n := bridgeNetwork(b, 24)
	r := bridgeBundle(b, n, "bench", "18090:80")
	raw, _ := readBack(b, r.Bundle.Path)
	for b.Loop() {
		if _, err := prepare(r); err != nil {
			b.Fatal(err)
		}
		if err := Teardown(context.Background(), r.Bundle); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(r.Bundle.Path, specFile), raw, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}
