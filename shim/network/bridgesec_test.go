package network

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"

	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/spec"

	"github.com/hostnet-dev/hostnet/shim/network/internal/nstest"
)

// assertAttached checks that what Prepare recorded for r is still on the
// host: its veth, its lease and its nftables rules.
func assertAttached(t *testing.T, r Request, a attachment) {
	t.Helper()
	if _, err := netlink.LinkByName(a.HostIfName); err != nil {
		t.Errorf("%s: veth %s is gone: %v", r.ID, a.HostIfName, err)
	}
	alloc, err := ipam.New(r.Config.Bridge.StateDir, r.Config.Bridge.Subnet, r.Config.Bridge.Gateway)
	if err != nil {
		t.Fatal(err)
	}
	if leases, err := alloc.Leases(); err != nil || leases[a.Address] != a.Key {
		t.Errorf("%s: lease of %s to %s is gone: %v, %v", r.ID, a.Address, a.Key, leases, err)
	}
	if keys, err := natTable.Keys(); err != nil || keys[a.Key] == 0 {
		t.Errorf("%s: nftables rules of %s are gone: %v, %v", r.ID, a.Key, keys, err)
	}
}

// Issue 10, item 4: two containerds on a host, each with a container
// namespace/id, share the bridge, the IPAM state and the nftables table.
// The second one's create must neither take the first one's address nor,
// failing, remove its veth, rules and lease.
func TestBridgeModeSameIDInTwoContainerds(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 24)
	running := bridgeBundle(t, n, "same", "")
	other := bridgeBundle(t, n, "same", "") // another containerd's bundle
	if _, err := prepare(running); err != nil {
		t.Fatal(err)
	}
	mine := attached(t, running)
	_, err := prepare(other)
	assertAttached(t, running, mine)
	if err != nil {
		t.Fatalf("Prepare of the same namespace/id from another containerd: %v", err)
	}
	theirs := attached(t, other)
	if theirs.Address == mine.Address || theirs.HostIfName == mine.HostIfName || theirs.Key == mine.Key {
		t.Errorf("both containers got %s / %s / %s", mine.Address, mine.HostIfName, mine.Key)
	}
	// The runtime then fails to create it (its state root collides):
	// the shim tears down what Prepare set up.
	if err := Teardown(context.Background(), other.Bundle); err != nil {
		t.Fatal(err)
	}
	assertAttached(t, running, mine)
	checkNothingLeftFor(t, other)
}

// A failed create undoes what it made, and nothing that was there before:
// here a link that already has the name of its veth.
func TestBridgeModeRollbackUndoesOnlyItsOwn(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 24)
	r := bridgeBundle(t, n, "collides", "")
	squatter := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: hostIfName(attachmentKey(r))}}
	if err := netlink.LinkAdd(squatter); err != nil {
		t.Fatal(err)
	}
	defer netlink.LinkDel(squatter)
	_, err := prepare(r)
	if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), "failed to create veth "+squatter.Name) {
		t.Fatalf("Prepare with its veth name taken: %v, want already exists naming %s", err, squatter.Name)
	}
	if _, err := netlink.LinkByName(squatter.Name); err != nil {
		t.Errorf("the failed create deleted link %s, which it did not make: %v", squatter.Name, err)
	}
	if err := netlink.LinkDel(squatter); err != nil {
		t.Fatal(err)
	}
	checkNothingLeftFor(t, r)
}

// Issue 10, item 2: a host IP must be one of the host's. Nothing is
// touched when it is not: no bridge, no lease.
func TestBridgeModeHostIPMustBeLocal(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 24)
	neighbour := bridgeBundle(t, n, "neighbour", "")
	if _, err := prepare(neighbour); err != nil {
		t.Fatal(err)
	}
	neighbourAddr := attached(t, neighbour).Address
	hostPort := 20000 + os.Getpid()%10000
	for i, ports := range []string{
		fmt.Sprintf("%s:80:8080", neighbourAddr),
		"198.51.100.53:53:53/udp",
	} {
		r := bridgeBundle(t, n, fmt.Sprintf("hostip%d", i), ports)
		before, _ := readBack(t, r.Bundle.Path)
		_, err := prepare(r)
		ip, _, _ := strings.Cut(ports, ":")
		want := fmt.Sprintf("annotation %s: cannot publish port %s", spec.PortsAnnotation, ports)
		if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), want) ||
			!strings.Contains(err.Error(), "host IP "+ip+" is not an address of this host") {
			t.Errorf("publish %s: %v, want invalid argument containing %q", ports, err, want)
		}
		if after, _ := readBack(t, r.Bundle.Path); string(after) != string(before) {
			t.Errorf("publish %s: config.json changed although Prepare failed", ports)
		}
		checkNothingLeftFor(t, r)
	}
	// The host's own addresses are fine: loopback, and unspecified.
	r := bridgeBundle(t, n, "local", fmt.Sprintf("127.0.0.1:%d:80,0.0.0.0:%d:81/udp", hostPort, hostPort))
	if _, err := prepare(r); err != nil {
		t.Errorf("publish on 127.0.0.1 and 0.0.0.0: %v", err)
	}
}

// Issue 10, item 3: a host-mode container declaring a port a bridge
// container publishes is refused, naming the port and the container.
func TestHostModeRefusesPublishedPort(t *testing.T) {
	nstest.NeedRoot(t)
	n := bridgeNetwork(t, 24)
	hostPort := 20000 + os.Getpid()%10000
	publisher := bridgeBundle(t, n, "publisher", fmt.Sprintf("127.0.0.1:%d:80", hostPort))
	if _, err := prepare(publisher); err != nil {
		t.Fatal(err)
	}
	key := attached(t, publisher).Key
	for _, tc := range []struct{ ports, want string }{
		{fmt.Sprintf("%d:%d", hostPort, hostPort), fmt.Sprintf("port %d/tcp is already published by bridge network container %s (127.0.0.1:%d:80/tcp)", hostPort, key, hostPort)},
		{fmt.Sprintf("%d:%d/udp", hostPort, hostPort), ""},
	} {
		s := newSpec("host", pidNS)
		s.Annotations[spec.PortsAnnotation] = tc.ports
		dir, before := writeBundle(t, s)
		_, err := prepare(request(dir, n))
		if tc.want == "" {
			if err != nil {
				t.Errorf("host mode declaring %s: %v", tc.ports, err)
			}
			continue
		}
		if !errors.Is(err, errdefs.ErrAlreadyExists) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("host mode declaring %s: %v, want already exists containing %q", tc.ports, err, tc.want)
		}
		if after, _ := readBack(t, dir); string(after) != string(before) {
			t.Error("config.json changed although Prepare failed")
		}
	}
}
