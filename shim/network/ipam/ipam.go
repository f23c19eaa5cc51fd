// Package ipam hands out IPv4 or IPv6 addresses from a subnet to
// containers, one allocator per subnet (a dual-stack bridge has two, as
// CNI's host-local has one range set per family).
//
// Every shim is its own process, so the allocations live in one JSON file
// per subnet under a state directory, read and rewritten under an exclusive
// flock. An address is leased to a key (containerd namespace + container
// id): allocating again for the same key returns the same address, so a
// retried create does not leak one, and Release frees exactly that key's.
package ipam

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/errdefs"

	"github.com/hostnet-dev/hostnet/shim/internal/atomicwrite"
	"github.com/hostnet-dev/hostnet/shim/network/internal/lockfile"
)

// Allocator leases addresses of one subnet.
type Allocator struct {
	subnet  netip.Prefix
	gateway netip.Addr
	file    string // the leases
	lock    string // flocked; never replaced, unlike file
	bootID  string
}

// state is the on-disk document.
type state struct {
	// BootID makes leases expire with the host: after a reboot no
	// container of the old boot exists and no shim is left to release them.
	BootID string                `json:"bootID"`
	Leases map[netip.Addr]string `json:"leases"`
	// Last is the most recently leased address. The next search starts
	// after it, as in CNI's host-local, so a released address is not
	// handed to a new container while peers may still have it cached.
	Last netip.Addr `json:"last,omitzero"`
}

// CheckSubnet checks that containers can have addresses of subnet behind
// gateway: the subnet needs room for the gateway and a container, and the
// gateway must be an address of the subnet a host can have. IPv6 subnets
// must be unicast and routable beyond the link (no link-local, multicast,
// loopback or IPv4-mapped ones). The configuration is checked with it when
// it is read, and New checks what it is given. The error's first word,
// "subnet" or "gateway", names the value at fault.
func CheckSubnet(subnet netip.Prefix, gateway netip.Addr) error {
	subnet = subnet.Masked()
	if subnet.Addr().Is6() {
		return checkSubnet6(subnet, gateway)
	}
	switch {
	case !subnet.Addr().Is4():
		return fmt.Errorf("subnet %s must be IPv4", subnet)
	case subnet.Bits() > 30:
		return fmt.Errorf("subnet %s is too small: it needs room for a gateway and containers", subnet)
	case !subnet.Contains(gateway):
		return fmt.Errorf("gateway %s is outside subnet %s", gateway, subnet)
	case gateway == subnet.Addr() || !subnet.Contains(gateway.Next()):
		return fmt.Errorf("gateway %s is the network or broadcast address of subnet %s", gateway, subnet)
	}
	return nil
}

func checkSubnet6(subnet netip.Prefix, gateway netip.Addr) error {
	a := subnet.Addr()
	switch {
	case a.Is4In6():
		return fmt.Errorf("subnet %s is IPv4-mapped: use the IPv4 subnet", subnet)
	case a.IsLinkLocalUnicast() || a.IsMulticast() || a.IsLoopback() || a.IsUnspecified() || subnet.Bits() < 8:
		return fmt.Errorf("subnet %s must be a unicast IPv6 subnet, such as a unique local fd00::/8 one", subnet)
	case subnet.Bits() > 126:
		return fmt.Errorf("subnet %s is too small: it needs room for a gateway and containers", subnet)
	case !subnet.Contains(gateway):
		return fmt.Errorf("gateway %s is outside subnet %s", gateway, subnet)
	case gateway == subnet.Addr():
		// RFC 4291 2.6.1: every router on the link answers it.
		return fmt.Errorf("gateway %s is the subnet-router anycast address of subnet %s", gateway, subnet)
	}
	return nil
}

// New returns an allocator for subnet, whose gateway address is never
// leased, keeping its state in dir.
func New(dir string, subnet netip.Prefix, gateway netip.Addr) (*Allocator, error) {
	if err := CheckSubnet(subnet, gateway); err != nil {
		return nil, fmt.Errorf("ipam: %v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
	}
	subnet = subnet.Masked()
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("ipam: failed to read boot id: %w", err)
	}
	// 10.89.0.0/16 -> 10.89.0.0-16.json, fd00:89::/64 -> fd00:89::-64.json:
	// one file per subnet, so two networks never share leases.
	base := strings.ReplaceAll(subnet.String(), "/", "-")
	return &Allocator{
		subnet:  subnet,
		gateway: gateway,
		file:    filepath.Join(dir, base+".json"),
		lock:    filepath.Join(dir, base+".lock"),
		bootID:  string(bytes.TrimSpace(bootID)),
	}, nil
}

// Allocate leases an address to key, or returns the one it already holds;
// leased says which, so that a failed create releases only a lease it
// made. A full subnet is a ResourceExhausted error.
func (a *Allocator) Allocate(key string) (addr netip.Addr, leased bool, err error) {
	var got netip.Addr
	err = a.update(func(s *state) (bool, error) {
		for addr, k := range s.Leases {
			if k == key {
				got = addr
				return false, nil
			}
		}
		addr, ok := a.next(s)
		if !ok {
			return false, fmt.Errorf("no free address in subnet %s for %s: all %d are leased: %w",
				a.subnet, key, len(s.Leases), errdefs.ErrResourceExhausted)
		}
		s.Leases[addr] = key
		s.Last = addr
		got, leased = addr, true
		return true, nil
	})
	return got, leased, err
}

// Release frees every address leased to key. Releasing a key without a
// lease is not an error: teardown runs again after partial failures.
func (a *Allocator) Release(key string) error {
	return a.update(func(s *state) (bool, error) {
		changed := false
		for addr, k := range s.Leases {
			if k == key {
				delete(s.Leases, addr)
				changed = true
			}
		}
		return changed, nil
	})
}

// Leases returns a copy of the current leases.
func (a *Allocator) Leases() (map[netip.Addr]string, error) {
	var out map[netip.Addr]string
	err := a.update(func(s *state) (bool, error) {
		out = s.Leases
		return false, nil
	})
	return out, err
}

// next finds a free address, searching after the last one leased and
// wrapping around once.
func (a *Allocator) next(s *state) (netip.Addr, bool) {
	first := a.subnet.Addr().Next() // skips the network address
	start := first
	if a.subnet.Contains(s.Last) {
		start = s.Last.Next()
	}
	addr := start
	for {
		if !a.subnet.Contains(addr) || a.isBroadcast(addr) {
			addr = first
		}
		if _, taken := s.Leases[addr]; !taken && addr != a.gateway {
			return addr, true
		}
		addr = addr.Next()
		if addr == start {
			return netip.Addr{}, false
		}
	}
}

// isBroadcast reports whether addr is the subnet's last address: IPv4's
// broadcast, never leased in IPv6 either, as in CNI's host-local.
func (a *Allocator) isBroadcast(addr netip.Addr) bool {
	return !a.subnet.Contains(addr.Next())
}

// update runs fn on the state under the lock and writes the state back if
// fn reports a change.
func (a *Allocator) update(fn func(*state) (bool, error)) error {
	lf, err := lockfile.Lock(a.lock) // in the state directory, beside a.file
	if err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	defer lf.Close() // releases the flock
	s, err := a.read()
	if err != nil {
		return err
	}
	changed, err := fn(s)
	if err != nil || !changed {
		return err
	}
	return a.write(s)
}

func (a *Allocator) read() (*state, error) {
	s := &state{BootID: a.bootID, Leases: map[netip.Addr]string{}}
	data, err := os.ReadFile(a.file)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("ipam: failed to read leases: %w", err)
	}
	var disk state
	if err := json.Unmarshal(data, &disk); err != nil {
		return nil, fmt.Errorf("ipam: failed to parse leases %s: %w", a.file, err)
	}
	if disk.BootID != a.bootID {
		return s, nil // the host rebooted: every lease is stale
	}
	if disk.Leases != nil {
		s.Leases = disk.Leases
	}
	s.Last = disk.Last
	return s, nil
}

// write replaces the leases atomically, so a crash never leaves half a
// document.
func (a *Allocator) write(s *state) error {
	data, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("ipam: failed to encode leases: %w", err)
	}
	if err := atomicwrite.WriteFile(a.file, data, 0o600); err != nil {
		return fmt.Errorf("ipam: %w", err)
	}
	return nil
}
