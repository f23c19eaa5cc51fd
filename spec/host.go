package spec

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/moby/sys/capability"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// PublishedPortsWarning is what Docker prints for -p with --network host.
const PublishedPortsWarning = "WARNING: Published ports are discarded when using host network mode"

// HostFile is a host file given read-only to host-mode containers.
type HostFile struct {
	Source      string // on the host, e.g. /etc/resolv.conf
	Destination string // in the container
}

// HostFiles are what Docker gives a --network host container: the host's
// DNS settings and hosts file.
var HostFiles = []HostFile{
	{Source: "/etc/resolv.conf", Destination: "/etc/resolv.conf"},
	{Source: "/etc/hosts", Destination: "/etc/hosts"},
}

// AddHostFiles bind-mounts each file read-only unless the spec already
// mounts something there (CRI provides its own).
func AddHostFiles(s *specs.Spec, files []HostFile) (changed bool) {
	for _, f := range files {
		if MountsOn(s, f.Destination) {
			continue
		}
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: f.Destination,
			Type:        "bind",
			Source:      f.Source,
			Options:     []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
		})
		changed = true
	}
	return changed
}

// MountsOn reports whether one of the spec's mounts is at dest, a clean
// absolute path.
func MountsOn(s *specs.Spec, dest string) bool {
	return slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool {
		return filepath.Clean(m.Destination) == dest
	})
}

// SetHostHostname gives the container the host's name, as Docker does in host
// mode, unless the spec chose one. Without its own UTS namespace the
// container already sees the host's name.
func SetHostHostname(s *specs.Spec, hostname string) (changed bool) {
	if s.Hostname != "" || s.Linux == nil || !NewNamespace(s, specs.UTSNamespace) {
		return false
	}
	s.Hostname = hostname
	return true
}

// criDefaultSysctls are the sysctls containerd's CRI adds by default to
// the sandbox spec of a pod with a network namespace of its own
// (enable_unprivileged_ports, enable_unprivileged_icmp), with the values it
// sets. They are containerd's, not the pod author's.
var criDefaultSysctls = map[string]string{
	"net.ipv4.ip_unprivileged_port_start": "0",
	"net.ipv4.ping_group_range":           "0 2147483647",
}

// DropCRIDefaultSysctls removes containerd's default sysctls from a CRI
// sandbox's spec bound for the host's network namespace, where they would
// change the host, and returns what it removed as key=value, sorted. Only
// the exact key and value containerd writes is recognised: any other
// spelling or value is left for CheckHostSysctls to refuse. A pod author
// who asks for exactly these values is not told apart from containerd; in
// the host's network namespace the host's settings apply either way.
func DropCRIDefaultSysctls(s *specs.Spec) []string {
	if s.Linux == nil || s.Annotations[CRIContainerTypeAnnotation] != "sandbox" {
		return nil
	}
	var dropped []string
	for _, k := range slices.Sorted(maps.Keys(criDefaultSysctls)) {
		if v, ok := s.Linux.Sysctl[k]; ok && v == criDefaultSysctls[k] {
			delete(s.Linux.Sysctl, k)
			dropped = append(dropped, k+"="+v)
		}
	}
	return dropped
}

// CheckHostSysctls refuses net.* sysctls: in the host's network namespace
// they would change the host. Keys are read with ParseSysctl, the parse the
// runtime writes with, so another spelling of a net.* key (the slash form,
// a leading separator) cannot get past this check.
func CheckHostSysctls(s *specs.Spec) error {
	if s.Linux == nil {
		return nil
	}
	keys := slices.Sorted(maps.Keys(s.Linux.Sysctl))
	var bad []string
	for _, k := range keys {
		sc, err := ParseSysctl(k)
		if err != nil {
			return err
		}
		if strings.HasPrefix(sc.Dotted, "net.") {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("sysctls %s would change the host's network settings: they are not allowed in host network mode", strings.Join(bad, ", "))
}

// Harden removes CAP_NET_RAW and refuses CAP_NET_ADMIN, which in the host's
// network namespace would let the container sniff or reconfigure the host.
// It reports whether it removed anything.
func Harden(s *specs.Spec) (changed bool, err error) {
	if s.Process == nil {
		return false, nil
	}
	return HardenCapabilities(s.Process.Capabilities)
}

// HardenCapabilities is Harden for one process's capabilities, also those
// of a process exec'd into a hardened container: clients build its spec
// from the container's as they stored it, before Harden. Names are read
// with ParseCapability, as the runtime reads them; a name in another
// spelling is refused rather than guessed at.
func HardenCapabilities(c *specs.LinuxCapabilities) (changed bool, err error) {
	if c == nil {
		return false, nil
	}
	if err := CheckCapabilityNames(c); err != nil {
		return false, err
	}
	for _, set := range CapabilitySets(c) {
		for _, name := range *set.Names {
			if cp, ok := ParseCapability(name); ok && cp == capability.CAP_NET_ADMIN {
				return false, errors.New("CAP_NET_ADMIN is refused for host network mode containers by the hardened option")
			}
		}
	}
	for _, set := range CapabilitySets(c) {
		n := len(*set.Names)
		*set.Names = slices.DeleteFunc(*set.Names, func(name string) bool {
			cp, ok := ParseCapability(name)
			return ok && cp == capability.CAP_NET_RAW
		})
		changed = changed || len(*set.Names) != n
	}
	return changed, nil
}
