// Package procnet reads the sockets of a network namespace from procfs
// (/proc/<pid>/net/{tcp,tcp6,udp,udp6}) and the processes holding them: the
// one reader of these files for the shim's port checks and the hostnet
// command. It imports only the standard library, as the shim's other
// packages already do.
package procnet

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Socket is a socket that holds a port for others: a TCP listener or an
// unconnected UDP socket.
type Socket struct {
	Proto string // "tcp" or "udp"
	Addr  netip.Addr
	Port  uint16
	Inode string
}

// Socket states in /proc/net/{tcp,udp} (include/net/tcp_states.h): a TCP
// listener is TCP_LISTEN; a UDP socket is TCP_CLOSE until connect(2) makes
// it TCP_ESTABLISHED ("01").
const (
	tcpListen = "0A"
	tcpClose  = "07"
)

// Listening returns the listening sockets of the network namespace whose
// procfs net directory is netDir (<proc>/self/net, <proc>/<pid>/net): TCP
// listeners and UDP sockets that are not connected.
//
// A connected UDP socket is left out, as an established TCP connection is:
// the kernel delivers to it only datagrams from the one peer it connected
// to (udp4_lib_lookup2 scores a connected socket only for its peer), so it
// serves no one on its port; it is a client's, such as a resolver's query
// from an ephemeral port. Like an outgoing TCP connection, it does keep
// bind(2) of its exact local address from succeeding while it lives,
// which is a moment for a query and nothing a create-time check can hold
// a port against (TestListeningConnectedUDP shows both on the real
// kernel).
func Listening(netDir string) ([]Socket, error) {
	var out []Socket
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		socks, err := read(filepath.Join(netDir, name), strings.TrimSuffix(name, "6"))
		if err != nil {
			return nil, err
		}
		out = append(out, socks...)
	}
	return out, nil
}

func read(path, proto string) ([]Socket, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil // no IPv6
	}
	if err != nil {
		return nil, fmt.Errorf("failed to read sockets: %w", err)
	}
	defer f.Close()
	want := tcpListen
	if proto == "udp" {
		want = tcpClose
	}
	var out []Socket
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[3] != want {
			continue
		}
		addr, port, err := ParseAddr(fields[1])
		if err != nil {
			return nil, fmt.Errorf("failed to parse %s: %w", path, err)
		}
		out = append(out, Socket{Proto: proto, Addr: addr, Port: port, Inode: fields[9]})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("failed to read %s: %w", path, err)
	}
	return out, nil
}

// ParseAddr parses /proc/net's "0100007F:1F90": the address as the
// kernel's 32-bit words in host (little-endian) order, the port in hex. An
// IPv4-mapped IPv6 address is returned as the IPv4 one.
func ParseAddr(s string) (netip.Addr, uint16, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.Addr{}, 0, fmt.Errorf("bad address %q", s)
	}
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(raw[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(raw)
	return addr.Unmap(), uint16(port), nil
}

// Holders maps the inode of every socket in inodes to the pids of the
// processes holding it, lowest first. Processes that exit while it looks,
// or whose descriptors it may not read, are skipped.
func Holders(proc string, inodes map[string]bool) map[string][]int {
	out := map[string][]int{}
	procs, _ := os.ReadDir(proc)
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil {
			continue
		}
		fdDir := filepath.Join(proc, p.Name(), "fd")
		fds, _ := os.ReadDir(fdDir)
		seen := map[string]bool{}
		for _, fd := range fds {
			link, err := os.Readlink(filepath.Join(fdDir, fd.Name()))
			if err != nil {
				continue
			}
			inode, ok := strings.CutPrefix(link, "socket:[")
			inode = strings.TrimSuffix(inode, "]")
			if !ok || !inodes[inode] || seen[inode] {
				continue
			}
			seen[inode] = true
			out[inode] = append(out[inode], pid)
		}
	}
	for _, pids := range out {
		sort.Ints(pids)
	}
	return out
}

// Command is a process's command line, or its comm if it has none (a
// kernel thread, a zombie).
func Command(proc string, pid int) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err == nil && len(b) > 0 {
		return strings.TrimSpace(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
	return Comm(proc, pid)
}

// Comm is a process's command name (/proc/<pid>/comm).
func Comm(proc string, pid int) string {
	b, _ := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}
