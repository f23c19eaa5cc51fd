package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
)

const (
	// DefaultBinary is the OCI runtime the shim drives unless told otherwise.
	DefaultBinary = "hostnet-runc"
	// DefaultRoot is the runtime's state root; the containerd namespace is
	// appended so that namespaces cannot see each other's containers.
	DefaultRoot = "/run/containerd/hostnet-runc"

	configFile = "hostnet-runtime.json"
)

// Config is how the shim runs the OCI runtime for one container. It is saved
// in the bundle so that `shim delete`, which runs without the task service,
// can clean up a container whose shim died.
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
}

// ConfigFromOptions builds the runtime configuration from the runtime options
// containerd sends with CreateTaskRequest (runc's options type, so existing
// runtime configs work unchanged). opts may be nil.
func ConfigFromOptions(opts typeurl.Any, namespace string) (Config, error) {
	o, err := DecodeOptions(opts)
	if err != nil {
		return Config{}, err
	}
	name := o.BinaryName
	if name == "" {
		name = DefaultBinary
	}
	binary, err := ResolveBinary(name)
	if err != nil {
		return Config{}, err
	}
	root := o.Root
	if root == "" {
		root = DefaultRoot
	}
	return Config{
		Binary:        binary,
		Root:          filepath.Join(root, namespace),
		SystemdCgroup: o.SystemdCgroup,
		NoPivotRoot:   o.NoPivotRoot,
		NoNewKeyring:  o.NoNewKeyring,
		IoUID:         int(o.IoUid),
		IoGID:         int(o.IoGid),
	}, nil
}

// DecodeOptions unpacks runc-style runtime options. Absent options decode to
// the zero value; any other options type is rejected rather than ignored.
func DecodeOptions(opts typeurl.Any) (*options.Options, error) {
	if opts == nil || len(opts.GetValue()) == 0 {
		return &options.Options{}, nil
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return nil, fmt.Errorf("failed to decode runtime options %q: %w", opts.GetTypeUrl(), err)
	}
	o, ok := v.(*options.Options)
	if !ok {
		return nil, fmt.Errorf("unsupported runtime options type %T, want %T: %w", v, o, errdefs.ErrInvalidArgument)
	}
	return o, nil
}

// WriteConfig saves c in bundle.
func WriteConfig(bundle string, c Config) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, configFile), data, 0o600); err != nil {
		return fmt.Errorf("failed to save runtime config: %w", err)
	}
	return nil
}

// ReadConfig loads the configuration saved in bundle. It returns an error
// wrapping os.ErrNotExist if the shim never got as far as saving it.
func ReadConfig(bundle string) (Config, error) {
	var c Config
	data, err := os.ReadFile(filepath.Join(bundle, configFile))
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("failed to parse %s: %w", filepath.Join(bundle, configFile), err)
	}
	if c.Binary == "" {
		return c, fmt.Errorf("%s names no runtime binary", filepath.Join(bundle, configFile))
	}
	return c, nil
}
