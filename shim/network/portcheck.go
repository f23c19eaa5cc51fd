package network

import (
	"bufio"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/errdefs"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

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
// bound on the host, naming the port and, when /proc shows it, the process
// holding it: a clear error at create instead of an EADDRINUSE deep inside
// the application later.
func checkPortsFree(ports []spec.PortMapping) error {
	const procRoot = "/proc"
	for _, p := range ports {
		inodes, err := boundSockets(procRoot, p.Protocol, p.ContainerPort)
		if err != nil {
			return err
		}
		if len(inodes) == 0 {
			continue
		}
		holder := ""
		if pid, comm, ok := socketOwner(procRoot, inodes); ok {
			holder = fmt.Sprintf(" by pid %d (%s)", pid, comm)
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

// boundSockets returns the inodes of sockets bound to port: TCP listeners,
// or any UDP socket.
func boundSockets(procRoot, proto string, port uint16) (map[string]bool, error) {
	inodes := map[string]bool{}
	for _, name := range []string{proto, proto + "6"} {
		f, err := os.Open(filepath.Join(procRoot, "net", name))
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("check host ports: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			_, portHex, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			n, err := strconv.ParseUint(portHex, 16, 16)
			if err != nil || uint16(n) != port {
				continue
			}
			const tcpListen = "0A"
			if proto == "tcp" && fields[3] != tcpListen {
				continue
			}
			inodes[fields[9]] = true
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("check host ports: %w", err)
		}
	}
	return inodes, nil
}

// socketOwner finds a process holding one of the socket inodes.
func socketOwner(procRoot string, inodes map[string]bool) (int, string, bool) {
	procs, _ := os.ReadDir(procRoot)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(procRoot, p.Name(), "fd")
		fds, _ := os.ReadDir(fdDir)
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
				comm, _ := os.ReadFile(filepath.Join(procRoot, p.Name(), "comm"))
				return pid, strings.TrimSpace(string(comm)), true
			}
		}
	}
	return 0, "", false
}
