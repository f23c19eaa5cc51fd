package spec

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// PortsAnnotation lists published ports, like `docker run -p`:
// "8080:80/tcp,127.0.0.1:5353:53/udp".
const PortsAnnotation = "hostnet.containerd.io/ports"

// NerdctlPortsAnnotation is where nerdctl records `-p` mappings, as JSON.
const NerdctlPortsAnnotation = "nerdctl/ports"

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostIP        netip.Addr `json:"hostIP,omitzero"`
	HostPort      uint16     `json:"hostPort"`
	ContainerPort uint16     `json:"containerPort"`
	Protocol      string     `json:"protocol"` // "tcp" or "udp"
}

func (p PortMapping) String() string {
	host := strconv.Itoa(int(p.HostPort))
	if p.HostIP.IsValid() {
		host = netip.AddrPortFrom(p.HostIP, p.HostPort).String()
	}
	return fmt.Sprintf("%s:%d/%s", host, p.ContainerPort, p.Protocol)
}

// ParsePorts parses the PortsAnnotation syntax: comma-separated
// [hostIP:]hostPort:containerPort[/tcp|udp]; hostPort may be omitted
// (":80") to mean the same as the container port.
func ParsePorts(s string) ([]PortMapping, error) {
	var out []PortMapping
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		p, err := parsePort(item)
		if err != nil {
			return nil, fmt.Errorf("invalid port mapping %q: %w", item, err)
		}
		out = append(out, p)
	}
	return out, nil
}

func parsePort(item string) (PortMapping, error) {
	p := PortMapping{Protocol: "tcp"}
	if i := strings.LastIndexByte(item, '/'); i >= 0 {
		p.Protocol = strings.ToLower(item[i+1:])
		item = item[:i]
		if p.Protocol != "tcp" && p.Protocol != "udp" {
			return p, fmt.Errorf("protocol must be tcp or udp")
		}
	}
	i := strings.LastIndexByte(item, ':')
	if i < 0 {
		return p, fmt.Errorf("want [hostIP:]hostPort:containerPort[/protocol]")
	}
	hostPart, containerPart := item[:i], item[i+1:]
	cport, err := parsePortNumber(containerPart)
	if err != nil {
		return p, fmt.Errorf("container port: %w", err)
	}
	p.ContainerPort = cport
	if j := strings.LastIndexByte(hostPart, ':'); j >= 0 {
		ip := strings.Trim(hostPart[:j], "[]")
		if p.HostIP, err = netip.ParseAddr(ip); err != nil {
			return p, fmt.Errorf("host IP: %w", err)
		}
		hostPart = hostPart[j+1:]
	}
	if hostPart == "" {
		p.HostPort = cport
		return p, nil
	}
	if p.HostPort, err = parsePortNumber(hostPart); err != nil {
		return p, fmt.Errorf("host port: %w", err)
	}
	return p, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// nerdctlPort is one port mapping as nerdctl records it (go-cni's
// PortMapping), in the NerdctlPortsAnnotation list and in
// NerdctlNetworkConfigFile alike.
type nerdctlPort struct {
	HostPort, ContainerPort int
	Protocol, HostIP        string
}

// mapping is the one reading of a nerdctlPort: the protocol folded to
// lower case, both ports in 1-65535, and the host IP parsed, where ""
// and 0.0.0.0 (nerdctl's default) mean none.
func (n nerdctlPort) mapping() (PortMapping, error) {
	p := PortMapping{Protocol: strings.ToLower(n.Protocol)}
	item := fmt.Sprintf("%d:%d/%s", n.HostPort, n.ContainerPort, n.Protocol)
	if n.HostIP != "" {
		item = n.HostIP + ":" + item
	}
	if p.Protocol != "tcp" && p.Protocol != "udp" {
		return p, fmt.Errorf("invalid port mapping %q: protocol must be tcp or udp", item)
	}
	for _, port := range []struct {
		which string
		n     int
		to    *uint16
	}{{"host", n.HostPort, &p.HostPort}, {"container", n.ContainerPort, &p.ContainerPort}} {
		if port.n < 1 || port.n > 65535 {
			return p, fmt.Errorf("invalid port mapping %q: %s port %d is not a port number (1-65535)", item, port.which, port.n)
		}
		*port.to = uint16(port.n)
	}
	if n.HostIP != "" && n.HostIP != "0.0.0.0" {
		ip, err := netip.ParseAddr(strings.Trim(n.HostIP, "[]"))
		if err != nil {
			return p, fmt.Errorf("invalid port mapping %q: host IP: %w", item, err)
		}
		p.HostIP = ip
	}
	return p, nil
}

// parseNerdctlPorts reads a list of nerdctl's port mappings.
func parseNerdctlPorts(list []nerdctlPort) ([]PortMapping, error) {
	out := make([]PortMapping, 0, len(list))
	for _, n := range list {
		p, err := n.mapping()
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// Published is a port a container publishes, with the annotation it comes
// from, for errors that name it.
type Published struct {
	PortMapping
	Annotation string
}

// PublishedPorts returns the ports a container publishes, from our
// annotation and from nerdctl's, in that order: the one parse of both,
// whose result the checks (CheckHostIPs) and the attach share.
func PublishedPorts(s *specs.Spec) ([]Published, error) {
	var out []Published
	err := eachPort(s, func(annotation string, p PortMapping) error {
		out = append(out, Published{PortMapping: p, Annotation: annotation})
		return nil
	})
	return out, err
}

// Mappings are the port mappings of ports.
func Mappings(ports []Published) []PortMapping {
	if ports == nil {
		return nil
	}
	out := make([]PortMapping, len(ports))
	for i, p := range ports {
		out[i] = p.PortMapping
	}
	return out
}

// PortsFor returns the ports a container publishes, from our annotation and
// from nerdctl's, in that order.
func PortsFor(s *specs.Spec) ([]PortMapping, error) {
	ports, err := PublishedPorts(s)
	return Mappings(ports), err
}

// CheckHostIPs refuses a published port whose host IP is neither
// unspecified nor an address of the host, as binding it would: a DNAT rule
// for another address would take the host's own connections to it (a
// neighbour container's, a DNS server's) to the container. isHostAddr
// answers for the host; the error names the annotation and the address.
func CheckHostIPs(ports []Published, isHostAddr func(netip.Addr) bool) error {
	for _, p := range ports {
		if !p.HostIP.IsValid() || p.HostIP.IsUnspecified() || isHostAddr(p.HostIP) {
			continue
		}
		return fmt.Errorf("annotation %s: cannot publish port %s: host IP %s is not an address of this host", p.Annotation, p.PortMapping, p.HostIP)
	}
	return nil
}

// eachPort calls fn with every port mapping s publishes and the annotation
// it comes from.
func eachPort(s *specs.Spec, fn func(annotation string, p PortMapping) error) error {
	if v, ok := s.Annotations[PortsAnnotation]; ok {
		ports, err := ParsePorts(v)
		if err != nil {
			return fmt.Errorf("annotation %s: %w", PortsAnnotation, err)
		}
		for _, p := range ports {
			if err := fn(PortsAnnotation, p); err != nil {
				return err
			}
		}
	}
	if v, ok := s.Annotations[NerdctlPortsAnnotation]; ok && v != "" {
		var np []nerdctlPort
		if err := json.Unmarshal([]byte(v), &np); err != nil {
			return fmt.Errorf("annotation %s: %w", NerdctlPortsAnnotation, err)
		}
		ports, err := parseNerdctlPorts(np)
		if err != nil {
			return fmt.Errorf("annotation %s: %w", NerdctlPortsAnnotation, err)
		}
		for _, p := range ports {
			if err := fn(NerdctlPortsAnnotation, p); err != nil {
				return err
			}
		}
	}
	return nil
}
