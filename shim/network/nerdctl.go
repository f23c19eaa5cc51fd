package network

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/internal/boundedread"
	"github.com/hostnet-dev/hostnet/spec"
)

// maxNerdctlConfig bounds what is read of nerdctl's network-config.json.
const maxNerdctlConfig = 1 << 20

// refuseNerdctlPorts refuses hostnet's bridge mode for a nerdctl container
// with published ports. nerdctl 2.2 keeps `-p` in its state directory, not
// in the spec, and publishes it from its CNI hook, which does nothing
// under --network none (the only nerdctl network bridge mode accepts):
// the ports would silently not be published while `nerdctl ps` lists
// them. The error names the annotation that publishes them instead.
func refuseNerdctlPorts(s *specs.Spec) error {
	dir := s.Annotations[spec.NerdctlStateDirAnnotation]
	if dir == "" {
		return nil
	}
	if !filepath.IsAbs(dir) {
		return invalid(fmt.Errorf("annotation %s: %q is not an absolute path", spec.NerdctlStateDirAnnotation, dir))
	}
	path := filepath.Join(dir, spec.NerdctlNetworkConfigFile)
	data, err := boundedread.NoFollow(path, maxNerdctlConfig)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("failed to read nerdctl's published ports: %w", err)
	}
	ports, err := spec.ParseNerdctlNetworkConfig(data)
	if err != nil {
		return invalid(fmt.Errorf("nerdctl's published ports in %s: %w", path, err))
	}
	if len(ports) == 0 {
		return nil
	}
	items := make([]string, len(ports))
	for i, p := range ports {
		items[i] = p.String()
	}
	list := strings.Join(items, ",")
	return invalid(fmt.Errorf("nerdctl's -p %s cannot be published in hostnet's bridge network mode: nerdctl keeps it in %s, not in the spec: "+
		"pass --annotation %s=%s instead of -p", list, path, spec.PortsAnnotation, list))
}
