package spec

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// JoinNetworkNamespace makes the container join the namespace pinned at
// path instead of creating one.
func JoinNetworkNamespace(s *specs.Spec, path string) {
	if s.Linux == nil {
		s.Linux = &specs.Linux{}
	}
	s.Linux.Namespaces = slices.DeleteFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.NetworkNamespace
	})
	s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: path})
}

// SetBridgeHostname names a container with its own UTS namespace and no
// hostname after the first 12 characters of its id, as Docker does, so
// that its /etc/hosts entry matches what it sees.
func SetBridgeHostname(s *specs.Spec, id string) {
	if s.Hostname != "" || s.Linux == nil {
		return
	}
	if slices.ContainsFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.UTSNamespace && ns.Path == ""
	}) {
		s.Hostname = id[:min(len(id), 12)]
	}
}

// HostsFile is /etc/hosts for a container with its own network namespace:
// the usual localhost names and its hostname on each of its addresses
// (IPv4, IPv6; invalid ones are skipped).
func HostsFile(hostname string, addrs ...netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("127.0.0.1\tlocalhost\n")
	b.WriteString("::1\tlocalhost ip6-localhost ip6-loopback\n")
	for _, addr := range addrs {
		if hostname != "" && addr.IsValid() {
			fmt.Fprintf(&b, "%s\t%s\n", addr, hostname)
		}
	}
	return b.Bytes()
}

// ResolvConf turns the host's resolv.conf into a container's: nameservers
// on loopback addresses (systemd-resolved's 127.0.0.53, a local dnsmasq)
// are unreachable from the container's namespace and are dropped, as are
// IPv6 ones, which an IPv4-only bridge cannot reach. Nothing is added in
// their place. It also returns how many nameservers are left.
func ResolvConf(host []byte) ([]byte, int) {
	var b bytes.Buffer
	kept := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			addr, err := netip.ParseAddr(f[1])
			if err != nil || addr.IsLoopback() || !addr.Is4() {
				continue
			}
			kept++
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.Bytes(), kept
}
