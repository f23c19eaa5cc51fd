package network

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/internal/procnet"
	"github.com/hostnet-dev/hostnet/spec"
)

// portTakenError is a port someone else holds, as opposed to a failure to
// find out.
type portTakenError struct{ msg string }

func (e *portTakenError) Error() string { return e.msg }

// taken marks a port conflict, with why, as AlreadyExists; other errors
// are returned as they are.
func taken(err error, why string) error {
	var pt *portTakenError
	if !errors.As(err, &pt) {
		return err
	}
	if why != "" {
		return fmt.Errorf("%v: %s: %w", err, why, errdefs.ErrAlreadyExists) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
	}
	return fmt.Errorf("%v: %w", err, errdefs.ErrAlreadyExists) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
}

// checkPortsFree fails when a port a host-mode container declares is already
// held on the host (a TCP listener or an unconnected UDP socket, as
// procnet.Listening decides), naming the port and, when /proc shows it, the
// process holding it: a clear error at create instead of an EADDRINUSE deep
// inside the application later.
func checkPortsFree(ports []spec.PortMapping) error {
	const procRoot = "/proc"
	if len(ports) == 0 {
		return nil
	}
	// The shim runs in the host's network namespace: its own net view
	// is the host's.
	socks, err := procnet.Listening(filepath.Join(procRoot, "self", "net"))
	if err != nil {
		return fmt.Errorf("check host ports: %w", err)
	}
	for _, p := range ports {
		inodes := map[string]bool{}
		for _, s := range socks {
			if s.Proto == p.Protocol && s.Port == p.ContainerPort {
				inodes[s.Inode] = true
			}
		}
		if len(inodes) == 0 {
			continue
		}
		holder, pid := "", 0
		for _, pids := range procnet.Holders(procRoot, inodes) {
			if pid == 0 || pids[0] < pid {
				pid = pids[0]
			}
		}
		if pid > 0 {
			holder = fmt.Sprintf(" by pid %d (%s)", pid, procnet.Comm(procRoot, pid))
		}
		return &portTakenError{fmt.Sprintf("port %d/%s is already in use on the host%s", p.ContainerPort, p.Protocol, holder)}
	}
	return nil
}

// checkPortsUnpublished fails when a port a host-mode container declares is
// published by a bridge-mode container: the DNAT rule would take the
// host-mode container's clients without a word.
func checkPortsUnpublished(ports []spec.PortMapping) error {
	if len(ports) == 0 {
		return nil
	}
	published, err := natTable.Published()
	if err != nil {
		return fmt.Errorf("check host ports: %w", err)
	}
	for _, p := range ports {
		for _, pub := range published {
			if pub.Mapping.HostPort == p.ContainerPort && pub.Mapping.Protocol == p.Protocol {
				return &portTakenError{fmt.Sprintf("port %d/%s is already published by bridge network container %s (%s)",
					p.ContainerPort, p.Protocol, pub.Owner, pub.Mapping)}
			}
		}
	}
	return nil
}

// isHostAddr reports whether addr is one of the host's: whether the
// kernel routes it to the host itself (every address of its interfaces,
// all of 127.0.0.0/8). That is what bind(2) requires and what the
// publish rules' "fib daddr type local" matches. It asks the network
// namespace of the calling thread, the host's in the shim.
func isHostAddr(addr netip.Addr) bool {
	routes, err := netlink.RouteGet(addr.AsSlice())
	return err == nil && len(routes) > 0 && routes[0].Type == unix.RTN_LOCAL
}
