// Package cni runs the plugins of a CNI network configuration list for a
// bridge-mode container, through libcni, instead of hostnet's built-in
// bridge (network.cni_conflist).
//
// Everything DEL needs is kept in the container's bundle: the record (the
// configuration list as it was used, with its plugins inlined, the plugin
// directories and the runtime configuration: container id, netns path,
// interface name, capability arguments) and libcni's cache of the ADD
// result. DEL therefore works from `shim delete` after the shim died, and
// with what ADD used whatever the configuration says later.
package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/internal/boundedread"
	"github.com/hostnet-dev/hostnet/spec"
)

// IfName is the container's interface.
const IfName = "eth0"

// portMappings is the capability portmap takes published ports by.
const portMappings = "portMappings"

// maxConfList bounds what Load reads: a configuration list is small.
const maxConfList = 1 << 20

// Load reads and parses the configuration list at path. Errors name the
// file, as containerd's CRI does for its CNI configuration.
func Load(path string) (*libcni.NetworkConfigList, error) {
	if !filepath.IsAbs(path) {
		return nil, fmt.Errorf("CNI configuration list %q: not an absolute path", path)
	}
	data, err := boundedread.File(path, maxConfList)
	if err != nil {
		return nil, fmt.Errorf("failed to load CNI configuration list %s: %w", path, err)
	}
	list, err := libcni.ConfListFromBytes(data)
	if err == nil && !list.LoadOnlyInlinedPlugins {
		// CNI 1.1: plugins may also come from <dir>/<network name>/.
		var more []*libcni.PluginConfig
		if more, err = libcni.NetworkPluginConfsFromFiles(filepath.Dir(path), list.Name); err == nil {
			list.Plugins = append(list.Plugins, more...)
		}
	}
	if err == nil && list.Name == "" {
		err = errors.New("no network name")
	}
	if err == nil && len(list.Plugins) == 0 {
		err = errors.New("no plugins")
	}
	if err != nil {
		return nil, fmt.Errorf("invalid CNI configuration list %s: %w", path, err)
	}
	return list, nil
}

// Attachment is one container's CNI network: the record saved in its
// bundle.
type Attachment struct {
	// File is where the configuration list was read from, for messages.
	File string `json:"file"`
	// ConfList is the list as used, its plugins inlined.
	ConfList json.RawMessage `json:"conflist"`
	BinDirs  []string        `json:"binDirs"`
	// The runtime configuration.
	ContainerID    string         `json:"containerID"`
	NetNS          string         `json:"netns"`
	IfName         string         `json:"ifName"`
	CapabilityArgs map[string]any `json:"capabilityArgs,omitempty"`

	bundle bundle.Bundle
	list   *libcni.NetworkConfigList
}

// New loads the configuration list at file for a container whose network
// namespace will be netnsPath. Ports are handed to the plugins that take the
// portMappings capability (portmap); with ports but no such plugin it
// fails, as they would silently not be published.
func New(b bundle.Bundle, file, binDir, containerID, netnsPath string, ports []spec.PortMapping) (*Attachment, error) {
	list, err := Load(file)
	if err != nil {
		return nil, err
	}
	a := &Attachment{File: file, BinDirs: []string{binDir}, ContainerID: containerID, NetNS: netnsPath, IfName: IfName,
		bundle: b, list: list}
	if len(ports) > 0 {
		if !takes(list, portMappings) {
			return nil, fmt.Errorf("CNI network %q (%s) cannot publish ports %s: none of its plugins takes the %s capability (add portmap with \"capabilities\": {\"%s\": true})",
				list.Name, file, portList(ports), portMappings, portMappings)
		}
		a.CapabilityArgs = map[string]any{portMappings: mappings(ports)}
	}
	if a.ConfList, err = inline(list); err != nil {
		return nil, fmt.Errorf("CNI configuration list %s: %w", file, err)
	}
	return a, nil
}

// Read loads the record in the bundle; an error wrapping os.ErrNotExist
// means there is none (the container has no CNI network, or it was
// deleted).
func Read(b bundle.Bundle) (*Attachment, error) {
	a := &Attachment{bundle: b}
	if err := b.ReadCNI(a); err != nil {
		return nil, err
	}
	var err error
	if a.list, err = libcni.ConfListFromBytes(a.ConfList); err != nil {
		return nil, fmt.Errorf("CNI network record in %s: %w", b.Path, err)
	}
	return a, nil
}

// Save writes the record into the bundle.
func (a *Attachment) Save() error {
	if err := a.bundle.WriteCNI(a); err != nil {
		return fmt.Errorf("failed to save CNI network record: %w", err)
	}
	return nil
}

// Remove deletes the record and libcni's cache from the bundle.
func (a *Attachment) Remove() error {
	if err := a.bundle.RemoveCNI(); err != nil {
		return fmt.Errorf("failed to remove CNI network record: %w", err)
	}
	return nil
}

// Name is the network's.
func (a *Attachment) Name() string { return a.list.Name }

// Add runs the plugins' ADD and returns the container's first IPv4
// address on its interface (the first address of any family if none,
// the zero Addr if the result has none).
func (a *Attachment) Add(ctx context.Context) (netip.Addr, error) {
	res, err := a.cni().AddNetworkList(ctx, a.list, a.runtimeConf())
	if err != nil {
		return netip.Addr{}, fmt.Errorf("CNI network %q (%s): ADD: %w", a.list.Name, a.File, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("CNI network %q (%s): ADD result: %w", a.list.Name, a.File, err)
	}
	return address(r, a.IfName)
}

// Check runs the plugins' CHECK where the list's version has it (0.4.0
// and later) and the list does not disable it.
func (a *Attachment) Check(ctx context.Context) error {
	err := a.cni().CheckNetworkList(ctx, a.list, a.runtimeConf())
	if err != nil && !errors.Is(err, libcni.ErrorCheckNotSupp) {
		return fmt.Errorf("CNI network %q (%s): CHECK: %w (for plugins that fail CHECK on a sound network, the list can set \"disableCheck\": true)", a.list.Name, a.File, err)
	}
	return nil
}

// Del runs the plugins' DEL, in reverse order, with the cached ADD result.
// Plugins make DEL idempotent: it also undoes a half-done ADD.
func (a *Attachment) Del(ctx context.Context) error {
	if err := a.cni().DelNetworkList(ctx, a.list, a.runtimeConf()); err != nil {
		return fmt.Errorf("CNI network %q (%s): DEL: %w", a.list.Name, a.File, err)
	}
	return nil
}

func (a *Attachment) cni() *libcni.CNIConfig {
	return libcni.NewCNIConfigWithCacheDir(a.BinDirs, a.bundle.CNICache(), &pluginExec{})
}

func (a *Attachment) runtimeConf() *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName, CapabilityArgs: a.CapabilityArgs}
}

// takes reports whether a plugin of the list has the capability.
func takes(list *libcni.NetworkConfigList, capability string) bool {
	for _, p := range list.Plugins {
		if p.Network != nil && p.Network.Capabilities[capability] {
			return true
		}
	}
	return false
}

// portMapping is portmap's portMappings entry.
type portMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func mappings(ports []spec.PortMapping) []portMapping {
	out := make([]portMapping, len(ports))
	for i, p := range ports {
		out[i] = portMapping{HostPort: int(p.HostPort), ContainerPort: int(p.ContainerPort), Protocol: p.Protocol}
		if p.HostIP.IsValid() && !p.HostIP.IsUnspecified() {
			out[i].HostIP = p.HostIP.String()
		}
	}
	return out
}

func portList(ports []spec.PortMapping) string {
	s := ""
	for i, p := range ports {
		if i > 0 {
			s += ","
		}
		s += p.String()
	}
	return s
}

// inline is the list as one document with every plugin in it, as loaded.
func inline(list *libcni.NetworkConfigList) (json.RawMessage, error) {
	var doc map[string]any
	if err := json.Unmarshal(list.Bytes, &doc); err != nil {
		return nil, err
	}
	plugins := make([]json.RawMessage, len(list.Plugins))
	for i, p := range list.Plugins {
		plugins[i] = p.Bytes
	}
	doc["plugins"] = plugins
	doc["loadOnlyInlinedPlugins"] = true
	return json.Marshal(doc)
}

// address picks the container's address from an ADD result: none (the
// zero Addr) is not an error, a list may leave addressing to the container.
func address(r *types100.Result, ifName string) (netip.Addr, error) {
	var first netip.Addr
	for _, ip := range r.IPs {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		addr = addr.Unmap()
		if ip.Interface != nil && *ip.Interface < len(r.Interfaces) && r.Interfaces[*ip.Interface].Name != ifName {
			continue
		}
		if addr.Is4() {
			return addr, nil
		}
		if !first.IsValid() {
			first = addr
		}
	}
	return first, nil
}
