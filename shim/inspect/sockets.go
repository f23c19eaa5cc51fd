package inspect

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

// socket is a listening socket of the network namespace /proc/self/net
// shows: a TCP listener or an unconnected UDP socket.
type socket struct {
	proto string // "tcp" or "udp"
	addr  netip.Addr
	port  uint16
	inode string
}

// Socket states in /proc/net/{tcp,udp}: TCP_LISTEN, and TCP_CLOSE, which
// an unconnected UDP socket has.
const (
	tcpListen = "0A"
	udpClose  = "07"
)

// listeningSockets reads proc/self/net/{tcp,tcp6,udp,udp6}.
func listeningSockets(proc string) ([]socket, error) {
	var out []socket
	for _, name := range []string{"tcp", "tcp6", "udp", "udp6"} {
		proto := strings.TrimSuffix(name, "6")
		path := filepath.Join(proc, "self", "net", name)
		f, err := os.Open(path)
		if os.IsNotExist(err) {
			continue // no IPv6
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read sockets: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 {
				continue
			}
			want := tcpListen
			if proto == "udp" {
				want = udpClose
			}
			if fields[3] != want {
				continue
			}
			if proto == "udp" {
				// A connected UDP socket is a client's.
				if _, remPort, err := parseHexAddr(fields[2]); err != nil || remPort != 0 {
					continue
				}
			}
			addr, port, err := parseHexAddr(fields[1])
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("failed to parse %s: %w", path, err)
			}
			out = append(out, socket{proto: proto, addr: addr, port: port, inode: fields[9]})
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("failed to read %s: %w", path, err)
		}
	}
	return out, nil
}

// parseHexAddr parses /proc/net's "0100007F:1F90": the address as the
// kernel's 32-bit words in host (little-endian) order, the port in hex.
func parseHexAddr(s string) (netip.Addr, uint16, error) {
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

// process is a process holding sockets.
type process struct {
	pid     int
	command string
}

// socketHolders maps the inode of every socket in inodes to the processes
// holding it, lowest pid first.
func socketHolders(proc string, inodes map[string]bool) map[string][]process {
	out := map[string][]process{}
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
			out[inode] = append(out[inode], process{pid: pid, command: command(proc, pid)})
		}
	}
	for _, ps := range out {
		sort.Slice(ps, func(i, j int) bool { return ps[i].pid < ps[j].pid })
	}
	return out
}

// command is a process's command line, or its comm if it has none.
func command(proc string, pid int) string {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "cmdline"))
	if err == nil && len(b) > 0 {
		return strings.TrimSpace(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " "))
	}
	b, _ = os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "comm"))
	return strings.TrimSpace(string(b))
}

// parentPid is a process's parent, 0 if it cannot be read.
func parentPid(proc string, pid int) int {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
