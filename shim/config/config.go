// Package config is what configures the shim for a container: containerd's
// runtime options, which FromOptions turns into Settings, and hostnet's own
// TOML document (Config), which a user hands the shim through them
// (ConfigPath or ConfigBody), e.g. `ctr run --runtime-config-path`, or
// which the node's file holds (/etc/containerd/hostnet.toml, LoadNode) for
// options that carry none, such as CRI's for a runtime without options.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/pelletier/go-toml/v2"

	"github.com/hostnet-dev/hostnet/shim/network/ipam"
	"github.com/hostnet-dev/hostnet/spec"
)

// Config is the whole document. Every field is optional.
type Config struct {
	Network Network `toml:"network"`
	Runtime Runtime `toml:"runtime"`
}

// Network chooses and configures network modes.
type Network struct {
	// DefaultMode applies to containers without the network annotation.
	DefaultMode spec.NetworkMode `toml:"default_mode"`
	// Hardened drops CAP_NET_RAW and refuses CAP_NET_ADMIN for host-mode
	// containers, which would otherwise act on the host's network.
	Hardened bool   `toml:"hardened"`
	Bridge   Bridge `toml:"bridge"`
	// CNIConfList, when set, makes bridge mode run the plugins of this
	// CNI network configuration list, found in CNIBinDir, instead of the
	// built-in bridge. The document only checks that it is an absolute
	// path: the list is read by the bridge-mode create that runs it, so a
	// broken list fails that create, naming the file.
	CNIConfList string `toml:"cni_conflist"`
	CNIBinDir   string `toml:"cni_bin_dir"`
}

// Bridge configures the built-in bridge mode. Each family has its subnet
// and gateway, as CNI host-local's ranges have one range set per family:
// IPv4 alone (the default), IPv6 alone (Subnet empty) or both.
type Bridge struct {
	Name string `toml:"name"`
	// Subnet is IPv4; the zero prefix (subnet = "") for an IPv6-only bridge.
	Subnet netip.Prefix `toml:"subnet"`
	// Gateway is the bridge's own address; the subnet's first by default.
	Gateway netip.Addr `toml:"gateway"`
	// Subnet6 is IPv6, none by default; Gateway6 as Gateway.
	Subnet6  netip.Prefix `toml:"subnet6"`
	Gateway6 netip.Addr   `toml:"gateway6"`
	// GatewayMode6 is what containers' IPv6 traffic beyond the host gets,
	// as Docker's com.docker.network.bridge.gateway_mode_ipv6: "nat"
	// (masquerade, NAT66) or "routed" (their own addresses).
	GatewayMode6 string `toml:"gateway_mode6"`
	MTU          int    `toml:"mtu"`
	// StateDir holds the address allocations shared by every shim.
	StateDir string `toml:"state_dir"`
}

// Runtime overrides the OCI runtime the shim drives; runc's BinaryName and
// Root options, when set, take precedence.
type Runtime struct {
	Binary string `toml:"binary"`
	Root   string `toml:"root"`
	// SystemdCgroup runs the runtime with --systemd-cgroup, as runc's
	// SystemdCgroup option does: needed under CRI when the kubelet uses
	// the systemd cgroup driver (cgroupsPath "slice:prefix:name"), since
	// CRI sends hostnet this document, not runc's options.
	SystemdCgroup bool `toml:"systemd_cgroup"`
}

// Defaults are what an empty document means.
func Defaults() Config {
	c := defaults()
	_ = c.Validate() // fills in derived values such as the gateway
	return c
}

func defaults() Config {
	return Config{Network: Network{
		DefaultMode: spec.ModeHost,
		Bridge: Bridge{
			Name:         "hostnet0",
			Subnet:       netip.MustParsePrefix("10.89.0.0/16"),
			GatewayMode6: GatewayModeNAT,
			MTU:          1500,
			StateDir:     "/var/lib/hostnet/ipam",
		},
		CNIBinDir: "/opt/cni/bin",
	}}
}

// Parse decodes a TOML document over the defaults. Unknown keys are an error,
// so a typo does not silently fall back to a default.
func Parse(data []byte) (Config, error) {
	c := defaults()
	dec := toml.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		var strict *toml.StrictMissingError
		if errors.As(err, &strict) {
			return Config{}, fmt.Errorf("unknown hostnet config keys: %s", strict.String())
		}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			row, col := de.Position()
			return Config{}, fmt.Errorf("hostnet config line %d, column %d: %w", row, col, err)
		}
		return Config{}, fmt.Errorf("hostnet config: %w", err)
	}
	return c, c.Validate()
}

// Load reads and parses a config file.
func Load(path string) (Config, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the node admin's file, named by containerd's config or environment
	if err != nil {
		return Config{}, fmt.Errorf("read hostnet config: %w", err)
	}
	c, err := Parse(data)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Validate checks values the TOML types cannot.
func (c *Config) Validate() error {
	if _, err := spec.ParseNetworkMode(string(c.Network.DefaultMode)); err != nil {
		return fmt.Errorf("network.default_mode: %w", err)
	}
	b := &c.Network.Bridge
	if err := b.validateSubnets(); err != nil {
		return err
	}
	if b.MTU < 68 || b.MTU > 65535 {
		return fmt.Errorf("network.bridge.mtu %d is out of range (68-65535)", b.MTU)
	}
	if b.Subnet6.IsValid() && b.MTU < minMTU6 {
		// The kernel turns IPv6 off on a link with a smaller MTU.
		return fmt.Errorf("network.bridge.mtu %d is below IPv6's minimum of %d, which network.bridge.subnet6 needs", b.MTU, minMTU6)
	}
	if err := validInterfaceName(b.Name); err != nil {
		return fmt.Errorf("network.bridge.name %q %w", b.Name, err)
	}
	if n := c.Network; n.CNIConfList != "" {
		if !filepath.IsAbs(n.CNIBinDir) {
			return fmt.Errorf("network.cni_bin_dir %q must be an absolute path", n.CNIBinDir)
		}
		// Only the path: the list itself is read where bridge mode runs
		// it (cni.New), once per create, and not for host or none creates.
		if !filepath.IsAbs(n.CNIConfList) {
			return fmt.Errorf("network.cni_conflist %q must be an absolute path", n.CNIConfList)
		}
	}
	return nil
}

// Values of network.bridge.gateway_mode6.
const (
	GatewayModeNAT    = "nat"
	GatewayModeRouted = "routed"
)

// minMTU6 is IPv6's minimum link MTU (RFC 8200).
const minMTU6 = 1280

// validateSubnets checks each family's subnet and gateway, filling in the
// default gateway, the subnet's first address.
func (b *Bridge) validateSubnets() error {
	if !b.Subnet.IsValid() && !b.Subnet6.IsValid() {
		return errors.New("network.bridge.subnet must be a CIDR such as 10.89.0.0/16 (or network.bridge.subnet6 an IPv6 one, for an IPv6-only bridge)")
	}
	if b.Subnet.IsValid() {
		if b.Subnet.Addr().Is6() && !b.Subnet.Addr().Is4In6() {
			return fmt.Errorf("network.bridge.subnet %s is IPv6: set it as network.bridge.subnet6 (with subnet = \"\" for an IPv6-only bridge)", b.Subnet.Masked())
		}
		b.Subnet = b.Subnet.Masked()
		if !b.Gateway.IsValid() && b.Subnet.Addr().Is4() {
			b.Gateway = b.Subnet.Addr().Next()
		}
		// The error starts with "subnet" or "gateway": the setting at fault.
		if err := ipam.CheckSubnet(b.Subnet, b.Gateway); err != nil {
			return fmt.Errorf("network.bridge.%w", err)
		}
	} else if b.Gateway.IsValid() {
		return fmt.Errorf("network.bridge.gateway %s is set without network.bridge.subnet", b.Gateway)
	}
	if b.Subnet6.IsValid() {
		if !b.Subnet6.Addr().Is6() {
			return fmt.Errorf("network.bridge.subnet6 %s must be IPv6", b.Subnet6.Masked())
		}
		b.Subnet6 = b.Subnet6.Masked()
		if !b.Gateway6.IsValid() {
			b.Gateway6 = b.Subnet6.Addr().Next()
		}
		if err := ipam.CheckSubnet(b.Subnet6, b.Gateway6); err != nil {
			// "subnet ..." or "gateway ...": the IPv6 one.
			field, rest, _ := strings.Cut(err.Error(), " ")
			return fmt.Errorf("network.bridge.%s6 %s", field, rest)
		}
	} else if b.Gateway6.IsValid() {
		return fmt.Errorf("network.bridge.gateway6 %s is set without network.bridge.subnet6", b.Gateway6)
	}
	switch b.GatewayMode6 {
	case GatewayModeNAT, GatewayModeRouted:
	default:
		return fmt.Errorf("network.bridge.gateway_mode6 %q must be %q or %q", b.GatewayMode6, GatewayModeNAT, GatewayModeRouted)
	}
	return nil
}

// validInterfaceName is the kernel's dev_valid_name: 1-15 bytes, not "."
// or "..", without '/', ':' or white space.
func validInterfaceName(name string) error {
	if name == "" || len(name) > 15 {
		return errors.New("must be 1-15 characters")
	}
	if name == "." || name == ".." || strings.ContainsAny(name, "/: \t\n\v\f\r") {
		return errors.New(`must not be "." or ".." nor contain '/', ':' or white space`)
	}
	return nil
}
