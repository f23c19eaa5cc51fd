package spec

import (
	"encoding/json"
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Annotations clients of containerd put in the specs they make, which
// tell who manages a container's network.
const (
	// CRIContainerTypeAnnotation is set by containerd's CRI on every spec
	// it makes: "sandbox" for a pod's sandbox, "container" for the others.
	// CRI sets it after the pod's passed-through annotations, so a pod
	// author cannot.
	CRIContainerTypeAnnotation = "io.kubernetes.cri.container-type"
	// NerdctlNetworksAnnotation is nerdctl's label (copied into the spec's
	// annotations) with the networks of `nerdctl run --network`, as JSON:
	// ["bridge"], ["host"], ["none"], ["container:<id>"], ["ns:<path>"].
	NerdctlNetworksAnnotation = "nerdctl/networks"
	// NerdctlStateDirAnnotation is nerdctl's directory for the container,
	// where nerdctl 2.2 records its published ports (network-config.json).
	NerdctlStateDirAnnotation = "nerdctl/state-dir"
)

// Resolution is the network mode a container gets and why.
type Resolution struct {
	Mode NetworkMode
	// Explicit is set when the mode was asked for by the container's
	// annotation: it may then replace a netns the spec joins by path.
	Explicit bool
	// Why says where the mode came from, for the shim's log.
	Why string
	// Nerdctl is set when the spec is nerdctl's.
	Nerdctl bool
}

// ResolveMode decides the network mode of a container from hostnet's
// annotation (or def) and from the client that made the spec, where that
// client manages the network itself:
//
//   - A CRI hostNetwork pod (a sandbox spec with no network namespace) is
//     on the node's network by contract: the kubelet reports the node's IP
//     as the pod's. Bridge mode asked for by annotation is refused; a
//     default bridge mode gives way to host.
//   - nerdctl runs CNI for its networks from its createRuntime OCI hook in
//     the container's network namespace, and reports that network (ps,
//     port, inspect). hostnet honours nerdctl's --network: a CNI network
//     or none gets mode none (the spec as nerdctl made it), host gets
//     host. An annotation that contradicts it is refused, naming what to
//     pass instead: host mode under a CNI network would have nerdctl's
//     hook run CNI in the host's netns.
//
// Annotations are only read as nerdctl's outside CRI, where a pod author
// could pass them through pod_annotations.
func ResolveMode(s *specs.Spec, def NetworkMode) (Resolution, error) {
	mode, explicit, err := ModeFor(s, def)
	if err != nil {
		return Resolution{}, err
	}
	r := Resolution{Mode: mode, Explicit: explicit, Why: "default mode"}
	if explicit {
		r.Why = "annotation " + NetworkAnnotation
	}
	if criType, ok := s.Annotations[CRIContainerTypeAnnotation]; ok {
		_, hasNetNS := NetworkNamespace(s)
		if criType == "sandbox" && !hasNetNS && mode == ModeBridge {
			if explicit {
				return Resolution{}, fmt.Errorf("annotation %s=%s: a hostNetwork pod is on the node's network, and Kubernetes reports the node's IP as its IP: "+
					"remove the annotation, or drop hostNetwork: true for a network of the pod's own", NetworkAnnotation, ModeBridge)
			}
			r.Mode, r.Why = ModeHost, "hostNetwork pod (default mode bridge does not apply)"
		}
		return r, nil
	}
	v, ok := s.Annotations[NerdctlNetworksAnnotation]
	if !ok {
		return r, nil
	}
	r.Nerdctl = true
	var names []string
	if err := json.Unmarshal([]byte(v), &names); err != nil {
		return Resolution{}, fmt.Errorf("annotation %s: %w", NerdctlNetworksAnnotation, err)
	}
	kind, err := nerdctlNetworkKind(names)
	if err != nil {
		return Resolution{}, fmt.Errorf("annotation %s: %w", NerdctlNetworksAnnotation, err)
	}
	network := "--network " + strings.Join(names, ",")
	if len(names) == 0 {
		network = "its default network"
	}
	if !explicit {
		r.Why = "nerdctl " + network
		r.Mode = ModeNone
		if kind == "host" {
			r.Mode = ModeHost
		}
		return r, nil
	}
	switch {
	case kind == "cni" && mode != ModeNone:
		return Resolution{}, fmt.Errorf("annotation %s=%s conflicts with nerdctl's %s: nerdctl sets that network up with CNI from an OCI hook "+
			"in the container's network namespace, which in %s mode would be %s: "+
			"pass --network host for the host's network, or --network none with the annotation for hostnet's bridge",
			NetworkAnnotation, mode, network, mode, map[NetworkMode]string{ModeHost: "the host's", ModeBridge: "hostnet's bridge namespace"}[mode])
	case kind == "host" && mode == ModeBridge:
		return Resolution{}, fmt.Errorf("annotation %s=%s conflicts with nerdctl's --network host: pass --network none with the annotation for hostnet's bridge",
			NetworkAnnotation, mode)
	}
	r.Why += " (nerdctl " + network + ")"
	return r, nil
}

// nerdctlNetworkKind is nerdctl's nettype.Detect: "none", "host",
// "container", "ns", or "cni" for named networks and for none given.
func nerdctlNetworkKind(names []string) (string, error) {
	kind := ""
	for _, name := range names {
		k, _, _ := strings.Cut(name, ":")
		switch k {
		case "none", "host", "container", "ns":
		default:
			k = "cni"
		}
		if kind != "" && kind != k {
			return "", fmt.Errorf("mixed network types: %s and %s", kind, k)
		}
		kind = k
	}
	if kind == "" {
		kind = "cni"
	}
	return kind, nil
}

// NerdctlNetworkConfigFile is the file in a container's nerdctl state
// directory (NerdctlStateDirAnnotation) where nerdctl 2.2 records the
// ports `nerdctl run -p` publishes.
const NerdctlNetworkConfigFile = "network-config.json"

// ParseNerdctlNetworkConfig reads the ports of a NerdctlNetworkConfigFile:
// {"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]}.
func ParseNerdctlNetworkConfig(data []byte) ([]PortMapping, error) {
	var conf struct {
		PortMappings []nerdctlPort `json:"portMappings"`
	}
	if err := json.Unmarshal(data, &conf); err != nil {
		return nil, err
	}
	return parseNerdctlPorts(conf.PortMappings)
}
