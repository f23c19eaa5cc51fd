package ociruntime

import (
	"fmt"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/hostnet-dev/hostnet/shim/config"
)

const (
	// DefaultBinary is the OCI runtime the shim drives unless told otherwise.
	DefaultBinary = "hostnet-runc"
	// DefaultRoot is the runtime's state root; the containerd namespace is
	// appended so that namespaces cannot see each other's containers.
	DefaultRoot = "/run/containerd/hostnet-runc"
)

// Config is how the shim runs the OCI runtime for one container. It is saved
// in the bundle (bundle.WriteRuntime) so that `shim delete`, which runs
// without the task service, can clean up a container whose shim died.
type Config struct {
	// Binary is the absolute path of the runtime binary.
	Binary string `json:"binary"`
	// Root is the runtime's state directory, namespace included.
	Root          string `json:"root"`
	SystemdCgroup bool   `json:"systemd_cgroup,omitempty"`
	NoPivotRoot   bool   `json:"no_pivot_root,omitempty"`
	NoNewKeyring  bool   `json:"no_new_keyring,omitempty"`
	// IoUID and IoGID own the stdio pipes handed to the container.
	IoUID int `json:"io_uid,omitempty"`
	IoGID int `json:"io_gid,omitempty"`
	// Hostnet is hostnet's own configuration (network modes and so on).
	Hostnet config.Config `json:"hostnet"`
}

// ConfigFromOptions builds the runtime configuration from the runtime options
// containerd sends with CreateTaskRequest. Two forms are understood: runc's
// options type (BinaryName, Root, ... — so runc runtime configs work
// unchanged) and the generic runtimeoptions type whose ConfigPath or
// ConfigBody holds hostnet's TOML config (`ctr --runtime-config-path`, CRI's
// options table). runc's BinaryName and Root win over the TOML's [runtime].
// opts may be nil.
func ConfigFromOptions(opts typeurl.Any, namespace string) (Config, error) {
	o, hn, err := DecodeOptions(opts)
	if err != nil {
		return Config{}, err
	}
	name := firstNonEmpty(o.BinaryName, hn.Runtime.Binary, DefaultBinary)
	binary, err := ResolveBinary(name)
	if err != nil {
		return Config{}, err
	}
	root := firstNonEmpty(o.Root, hn.Runtime.Root, DefaultRoot)
	return Config{
		Binary:        binary,
		Root:          filepath.Join(root, namespace),
		SystemdCgroup: o.SystemdCgroup || hn.Runtime.SystemdCgroup,
		NoPivotRoot:   o.NoPivotRoot,
		NoNewKeyring:  o.NoNewKeyring,
		IoUID:         int(o.IoUid),
		IoGID:         int(o.IoGid),
		Hostnet:       hn,
	}, nil
}

// DecodeOptions unpacks the runtime options. Absent options decode to zero
// runc options and the default hostnet config; any other options type is
// rejected rather than ignored.
func DecodeOptions(opts typeurl.Any) (*options.Options, config.Config, error) {
	if opts == nil || len(opts.GetValue()) == 0 {
		return &options.Options{}, config.Defaults(), nil
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return nil, config.Config{}, fmt.Errorf("failed to decode runtime options %q: %w", opts.GetTypeUrl(), err)
	}
	switch o := v.(type) {
	case *options.Options:
		return o, config.Defaults(), nil
	case *runtimeoptions.Options:
		hn, err := hostnetConfig(o)
		if err != nil {
			return nil, config.Config{}, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument)
		}
		return &options.Options{}, hn, nil
	default:
		return nil, config.Config{}, fmt.Errorf("unsupported runtime options type %T, want %T or %T: %w",
			v, &options.Options{}, &runtimeoptions.Options{}, errdefs.ErrInvalidArgument)
	}
}

// hostnetConfig reads the TOML document: ConfigBody (CRI inlines it) wins
// over ConfigPath.
func hostnetConfig(o *runtimeoptions.Options) (config.Config, error) {
	switch {
	case len(o.ConfigBody) > 0:
		return config.Parse(o.ConfigBody)
	case o.ConfigPath != "":
		return config.Load(o.ConfigPath)
	default:
		return config.Defaults(), nil
	}
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
