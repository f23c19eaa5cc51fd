package network

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/network/bridge"
	"github.com/hostnet-dev/hostnet/shim/network/fwd"
	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/shim/network/nat"
	"github.com/hostnet-dev/hostnet/shim/network/netns"
	"github.com/hostnet-dev/hostnet/spec"
)

// The nftables table every shim shares; tests use their own.
var natTable = nat.Table{Name: nat.DefaultTable, LockDir: nat.DefaultLockDir}

// Where the host's DNS settings are read from. When the first has only
// loopback nameservers, systemd-resolved's upstream list is used, as
// Docker does.
var resolvConfs = []string{"/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"}

// attachment is everything bridge mode sets up for a container outside the
// bundle. It is saved in the bundle before the first change, so Teardown
// can undo a half-done attach even from `shim delete` after the shim died,
// and with the values used then, whatever the configuration says later.
//
// The IPv4 fields are zero on an IPv6-only bridge; the IPv6 ones (added
// with issue 15) on an IPv4-only one, as in records of older shims.
type attachment struct {
	Key     string       `json:"key"` // see attachmentKey
	Bridge  string       `json:"bridge"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Subnet6 and Gateway6 are the bridge's IPv6 ones; Masquerade6 is
	// its gateway mode (NAT66, or routed).
	Subnet6     netip.Prefix       `json:"subnet6,omitzero"`
	Gateway6    netip.Addr         `json:"gateway6,omitzero"`
	Masquerade6 bool               `json:"masquerade6,omitempty"`
	MTU         int                `json:"mtu"`
	IPAMDir     string             `json:"ipamDir"`
	NAT         nat.Table          `json:"nat"`
	HostIfName  string             `json:"hostIfName"`
	NetNS       string             `json:"netns"`
	Address     netip.Addr         `json:"address,omitzero"`  // once leased
	Address6    netip.Addr         `json:"address6,omitzero"` // once leased
	Ports       []spec.PortMapping `json:"ports,omitempty"`
	// NATRules are the nftables rules this container added (nat.Table.Add),
	// which teardown removes; none in an older shim's record, whose
	// rules teardown finds by their comment.
	NATRules []nat.Rule `json:"natRules,omitempty"`
	Forward  fwd.Rules  `json:"forward,omitzero"`
	Forward6 fwd.Rules  `json:"forward6,omitzero"`

	// made is what this Prepare created, so that its failure undoes
	// exactly that: an existing link, lease or rule of the same name may
	// belong to someone else.
	made made
}

// Record is the network record's layout (bundle.ReadNetwork), for readers
// such as `hostnet ps`; attachment stays the one definition.
type Record = attachment

// made records the steps of attach that changed the host.
type made struct {
	lease, lease6, netns, veth, rules, forward bool
}

// attachmentKey names what a container owns on the host: its lease, its
// nftables rules and its veth. Every containerd on the host shares these,
// and two of them may each run a container namespace/id: the bundle path,
// which lies in the state directory of the containerd that made it, tells
// them apart. namespace/id stays readable for operators.
func attachmentKey(r Request) string {
	sum := sha256.Sum256([]byte(filepath.Clean(r.Bundle.Path)))
	return r.Namespace + "/" + r.ID + "@" + hex.EncodeToString(sum[:4])
}

// prepareBridge attaches the container to the bridge and rewrites its
// spec to join the namespace. On failure everything done is undone.
func prepareBridge(ctx context.Context, r Request, s *specs.Spec, explicit bool, published []spec.Published, res *Result) (retErr error) {
	ports := spec.Mappings(published)
	if ns, ok := spec.NetworkNamespace(s); ok && ns.Path != "" {
		// A pod's netns, joined by path, is not ours to replace. A CRI app
		// container inherits the pod's annotations, so it also asks for
		// bridge: it joins its sandbox, which bridge mode attached already.
		if !explicit || s.Annotations[spec.CRIContainerTypeAnnotation] == "container" {
			return nil
		}
		return invalid(fmt.Errorf("bridge network mode cannot be used with a spec that joins network namespace %s", ns.Path))
	}
	if err := nat.CheckPorts(ports); err != nil {
		return err
	}
	if r.Config.CNIConfList != "" {
		if err := checkCNIPorts(ports); err != nil {
			return err
		}
	} else {
		b := r.Config.Bridge
		if err := nat.CheckPortFamilies(ports, b.Subnet.IsValid(), b.Subnet6.IsValid()); err != nil {
			return err
		}
	}
	if err := spec.CheckHostIPs(published, isHostAddr); err != nil {
		return invalid(err)
	}
	// A host process already listening on a published port would be
	// shadowed by the DNAT rule without a word: refuse, naming it.
	hostPorts := make([]spec.PortMapping, len(ports))
	for i, p := range ports {
		hostPorts[i] = spec.PortMapping{ContainerPort: p.HostPort, Protocol: p.Protocol}
	}
	if err := checkPortsFree(hostPorts); err != nil {
		return taken(err, "")
	}
	if r.Config.CNIConfList != "" {
		return prepareCNI(ctx, r, s, ports, res)
	}
	cfg := r.Config.Bridge
	key := attachmentKey(r)
	a := &attachment{
		Key:         key,
		Bridge:      cfg.Name,
		Subnet:      cfg.Subnet,
		Gateway:     cfg.Gateway,
		Subnet6:     cfg.Subnet6,
		Gateway6:    cfg.Gateway6,
		Masquerade6: cfg.Subnet6.IsValid() && cfg.GatewayMode6 != config.GatewayModeRouted,
		MTU:         cfg.MTU,
		IPAMDir:     cfg.StateDir,
		NAT:         natTable,
		HostIfName:  hostIfName(key),
		NetNS:       r.Bundle.NetNS(),
		Ports:       ports,
	}
	if err := a.save(r.Bundle); err != nil {
		return err
	}
	defer func() {
		if retErr != nil {
			if err := a.rollback(r.Bundle); err != nil {
				retErr = fmt.Errorf("%w; undoing the attach also failed: %v", retErr, err) //nolint:errorlint // one %w: errgrpc sends the client every wrapped error
			}
		}
	}()
	if err := a.attach(r.Bundle); err != nil {
		return err
	}
	if err := a.save(r.Bundle); err != nil { // now with everything
		return err
	}
	if a.Address6.IsValid() && !bridge.Forwarding6() {
		res.Warnings = append(res.Warnings, "net.ipv6.conf.all.forwarding is off on this host: the container reaches the host and "+
			"its neighbours over IPv6, not beyond (hostnet does not turn it on, which would stop the host accepting router advertisements)")
	}
	return joinBridgeNetNS(r, s, a.NetNS, []netip.Addr{a.Address, a.Address6}, res)
}

// checkCNIPorts refuses IPv6 host IPs, which bridge mode through CNI does
// not publish on.
func checkCNIPorts(ports []spec.PortMapping) error {
	for _, p := range ports {
		if p.HostIP.IsValid() && !p.HostIP.Is4() {
			return fmt.Errorf("cannot publish port %s: bridge mode through CNI publishes on IPv4 host addresses only: %w", p, errdefs.ErrInvalidArgument)
		}
	}
	return nil
}

// joinBridgeNetNS points the spec at the bridge-mode netns at nsPath, with
// the container's id as hostname and its own hosts (naming each valid
// address of addrs) and resolv.conf, written into the bundle.
func joinBridgeNetNS(r Request, s *specs.Spec, nsPath string, addrs []netip.Addr, res *Result) error {
	spec.SetBridgeHostname(s, r.ID)
	files := []spec.HostFile{
		{Source: r.Bundle.Hosts(), Destination: "/etc/hosts"},
		{Source: r.Bundle.ResolvConf(), Destination: "/etc/resolv.conf"},
	}
	resolv, warning, err := containerResolvConf()
	if err != nil {
		return err
	}
	if warning != "" {
		res.Warnings = append(res.Warnings, warning)
	}
	if err := r.Bundle.WriteHosts(spec.HostsFile(s.Hostname, addrs...)); err != nil {
		return err
	}
	if err := r.Bundle.WriteResolvConf(resolv); err != nil {
		return err
	}
	addHostFiles(s, r.Bundle.Path, files, res)
	spec.JoinNetworkNamespace(s, nsPath)
	res.SpecChanged = true
	return nil
}

// attach leases the addresses, creates the namespace, connects it to the
// bridge and installs the NAT rules, in that order. The record is saved
// again once the rules are in, so that it lists them.
func (a *attachment) attach(b bundle.Bundle) error {
	var err error
	if a.Subnet.IsValid() {
		if a.Address, a.made.lease, err = lease(a.IPAMDir, a.Subnet, a.Gateway, a.Key); err != nil {
			return err
		}
	}
	if a.Subnet6.IsValid() {
		if a.Address6, a.made.lease6, err = lease(a.IPAMDir, a.Subnet6, a.Gateway6, a.Key); err != nil {
			return err
		}
	}
	if err := netns.Create(a.NetNS); err != nil {
		return err
	}
	a.made.netns = true
	br := bridge.Bridge{Name: a.Bridge, Gateway: prefixOf(a.Gateway, a.Subnet), Gateway6: prefixOf(a.Gateway6, a.Subnet6), MTU: a.MTU}
	link, err := br.Ensure()
	if err != nil {
		return err
	}
	ep := bridge.Endpoint{HostIfName: a.HostIfName, NetNS: a.NetNS, Address: prefixOf(a.Address, a.Subnet), Address6: prefixOf(a.Address6, a.Subnet6)}
	if err := br.Attach(link, ep); err != nil {
		return err
	}
	a.made.veth = true
	a.made.rules = true // before Add: its failure may leave rules its rollback must find
	a.NATRules, err = a.NAT.Add(nat.Endpoint{Key: a.Key, Bridge: a.Bridge, Subnet: a.Subnet, Addr: a.Address,
		Subnet6: a.Subnet6, Addr6: a.Address6, Masquerade6: a.Masquerade6, Ports: a.Ports})
	if err != nil {
		return err
	}
	if err := a.save(b); err != nil { // the rules' handles, for teardown
		return err
	}
	// Hosts whose iptables FORWARD chain drops (Docker's) must let the
	// container's own traffic through.
	a.made.forward = true
	if a.Address.IsValid() {
		a.Forward = fwd.Rules{Key: a.Key, Bridge: a.Bridge, Addr: a.Address}
		if err := a.Forward.Add(); err != nil {
			return err
		}
	}
	if a.Address6.IsValid() {
		a.Forward6 = fwd.Rules{Key: a.Key, Bridge: a.Bridge, Addr: a.Address6}
		return a.Forward6.Add()
	}
	return nil
}

// lease leases key an address of subnet.
func lease(dir string, subnet netip.Prefix, gateway netip.Addr, key string) (netip.Addr, bool, error) {
	alloc, err := ipam.New(dir, subnet, gateway)
	if err != nil {
		return netip.Addr{}, false, err
	}
	return alloc.Allocate(key)
}

// release frees key's address of subnet, if it has one.
func release(dir string, subnet netip.Prefix, gateway netip.Addr, key string) error {
	alloc, err := ipam.New(dir, subnet, gateway)
	if err != nil {
		return err
	}
	return alloc.Release(key)
}

// prefixOf is addr with subnet's length, or the zero prefix without addr.
func prefixOf(addr netip.Addr, subnet netip.Prefix) netip.Prefix {
	if !addr.IsValid() {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(addr, subnet.Bits())
}

// teardown undoes attach, each step idempotent, in reverse order. The
// state file goes last, and only when every step worked, so that a later
// Teardown can retry what failed.
func (a *attachment) teardown(b bundle.Bundle) error {
	return a.undo(b, made{lease: true, lease6: true, netns: true, veth: true, rules: true, forward: true})
}

// rollback undoes what a failed Prepare made, and nothing else.
func (a *attachment) rollback(b bundle.Bundle) error {
	return a.undo(b, a.made)
}

func (a *attachment) undo(b bundle.Bundle, m made) error {
	var errs []error
	if m.forward {
		if err := a.Forward.Remove(); err != nil {
			errs = append(errs, err)
		}
		if err := a.Forward6.Remove(); err != nil {
			errs = append(errs, err)
		}
	}
	if m.rules {
		if err := a.NAT.Remove(a.Key, a.NATRules); err != nil {
			errs = append(errs, err)
		}
	}
	if m.veth {
		if err := bridge.Detach(a.HostIfName); err != nil {
			errs = append(errs, err)
		}
	}
	if m.netns {
		if err := netns.Remove(a.NetNS); err != nil {
			errs = append(errs, err)
		}
	}
	if m.lease && a.Subnet.IsValid() {
		if err := release(a.IPAMDir, a.Subnet, a.Gateway, a.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if m.lease6 && a.Subnet6.IsValid() {
		if err := release(a.IPAMDir, a.Subnet6, a.Gateway6, a.Key); err != nil {
			errs = append(errs, err)
		}
	}
	if err := b.RemoveHostFiles(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("failed to tear down bridge network of %s: %w", a.Key, errors.Join(errs...))
	}
	if err := b.RemoveNetwork(); err != nil {
		return fmt.Errorf("failed to remove network state of %s: %w", a.Key, err)
	}
	return nil
}

// teardownBridge undoes what the bundle's network record says, if any.
func teardownBridge(b bundle.Bundle) error {
	var a attachment
	err := b.ReadNetwork(&a)
	if errors.Is(err, os.ErrNotExist) {
		return nil // not bridge mode, or already torn down
	}
	if err != nil {
		return fmt.Errorf("failed to read network state: %w", err)
	}
	return a.teardown(b)
}

func (a *attachment) save(b bundle.Bundle) error {
	if err := b.WriteNetwork(a); err != nil {
		return fmt.Errorf("failed to save network state: %w", err)
	}
	return nil
}

// hostIfName names the host end of a container's veth after its key, so
// the name is known before the link exists and never collides in practice.
func hostIfName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "veth" + hex.EncodeToString(sum[:])[:11] // IFNAMSIZ-1 = 15
}

// containerResolvConf is the host's resolv.conf without nameservers the
// container cannot reach. The warning says when none is left.
func containerResolvConf() ([]byte, string, error) {
	var first []byte
	for i, path := range resolvConfs {
		host, err := os.ReadFile(path)
		if err != nil {
			if i > 0 && errors.Is(err, os.ErrNotExist) {
				break
			}
			return nil, "", fmt.Errorf("failed to read host DNS settings: %w", err)
		}
		out, n := spec.ResolvConf(host)
		if n > 0 {
			return out, "", nil
		}
		if first == nil {
			first = out
		}
	}
	return first, "the host's resolv.conf has no nameserver a bridge network container can reach: it gets none", nil
}
