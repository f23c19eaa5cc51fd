// Package ipam hands out IPv4 addresses from a subnet to containers.
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
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/internal/atomicwrite"
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

// New returns an allocator for subnet, whose gateway address is never
// leased, keeping its state in dir.
func New(dir string, subnet netip.Prefix, gateway netip.Addr) (*Allocator, error) {
	subnet = subnet.Masked()
	if !subnet.Addr().Is4() || subnet.Bits() > 30 {
		return nil, fmt.Errorf("ipam: subnet %s must be IPv4 with room for a gateway and a container (at most /30): %w", subnet, errdefs.ErrInvalidArgument)
	}
	if !subnet.Contains(gateway) {
		return nil, fmt.Errorf("ipam: gateway %s is outside subnet %s: %w", gateway, subnet, errdefs.ErrInvalidArgument)
	}
	bootID, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return nil, fmt.Errorf("ipam: failed to read boot id: %w", err)
	}
	// 10.89.0.0/16 -> 10.89.0.0-16.json: one file per subnet, so two
	// networks never share leases.
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

func (a *Allocator) isBroadcast(addr netip.Addr) bool {
	return !a.subnet.Contains(addr.Next())
}

// update runs fn on the state under the lock and writes the state back if
// fn reports a change.
func (a *Allocator) update(fn func(*state) (bool, error)) error {
	if err := os.MkdirAll(filepath.Dir(a.file), 0o700); err != nil {
		return fmt.Errorf("ipam: failed to create state directory: %w", err)
	}
	lf, err := os.OpenFile(a.lock, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("ipam: failed to open lock: %w", err)
	}
	defer lf.Close() // releases the flock
	if err := flock(lf); err != nil {
		return fmt.Errorf("ipam: failed to lock %s: %w", a.lock, err)
	}
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

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
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
