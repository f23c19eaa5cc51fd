package spec

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

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
func AddHostFiles(s *specs.Spec, files []HostFile) {
	for _, f := range files {
		if mountsOver(s, f.Destination) {
			continue
		}
		s.Mounts = append(s.Mounts, specs.Mount{
			Destination: f.Destination,
			Type:        "bind",
			Source:      f.Source,
			Options:     []string{"rbind", "ro", "nosuid", "nodev", "noexec"},
		})
	}
}

func mountsOver(s *specs.Spec, dest string) bool {
	return slices.ContainsFunc(s.Mounts, func(m specs.Mount) bool {
		return filepath.Clean(m.Destination) == dest
	})
}

// SetHostHostname gives the container the host's name, as Docker does in host
// mode, unless the spec chose one. Without its own UTS namespace the
// container already sees the host's name.
func SetHostHostname(s *specs.Spec, hostname string) {
	if s.Hostname != "" || s.Linux == nil {
		return
	}
	if slices.ContainsFunc(s.Linux.Namespaces, func(ns specs.LinuxNamespace) bool {
		return ns.Type == specs.UTSNamespace && ns.Path == ""
	}) {
		s.Hostname = hostname
	}
}

// CheckHostSysctls refuses net.* sysctls: in the host's network namespace
// they would change the host.
func CheckHostSysctls(s *specs.Spec) error {
	if s.Linux == nil {
		return nil
	}
	var bad []string
	for k := range s.Linux.Sysctl {
		if strings.HasPrefix(k, "net.") {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad)
	return fmt.Errorf("sysctls %s would change the host's network settings: they are not allowed in host network mode", strings.Join(bad, ", "))
}

// Harden removes CAP_NET_RAW and refuses CAP_NET_ADMIN, which in the host's
// network namespace would let the container sniff or reconfigure the host.
func Harden(s *specs.Spec) error {
	if s.Process == nil || s.Process.Capabilities == nil {
		return nil
	}
	c := s.Process.Capabilities
	sets := []*[]string{&c.Bounding, &c.Effective, &c.Permitted, &c.Inheritable, &c.Ambient}
	for _, set := range sets {
		if slices.Contains(*set, "CAP_NET_ADMIN") {
			return errors.New("CAP_NET_ADMIN is refused for host network mode containers by the hardened option")
		}
	}
	for _, set := range sets {
		*set = slices.DeleteFunc(*set, func(c string) bool { return c == "CAP_NET_RAW" })
	}
	return nil
}
