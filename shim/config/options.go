package config

import (
	"fmt"

	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/hostnet-dev/hostnet/shim/ociruntime"
)

// Settings are what containerd's runtime options, sent with a task's
// create, set for the container.
type Settings struct {
	// Runtime is the OCI runtime and how to run it.
	Runtime ociruntime.Config
	// IoUID and IoGID own the stdio pipes handed to the container.
	IoUID, IoGID int
	// Network configures the network modes.
	Network Network
}

// FromOptions reads the runtime options containerd sends with
// CreateTaskRequest. Two forms are understood: runc's options type
// (BinaryName, Root, ... — so runc runtime configs work unchanged) and the
// generic runtimeoptions type whose ConfigPath or ConfigBody holds hostnet's
// TOML document (`ctr --runtime-config-path`, CRI's options table). Options
// without such a document (nil, runc's type, runtimeoptions naming none)
// take the node's document instead (LoadNode); a document in the options
// replaces the node's whole. runc's BinaryName and Root win over the
// document's [runtime], and either's SystemdCgroup turns it on. The
// runtime's state root is the one of namespace and bundle's containerd in
// the root the options name (ociruntime.StateRoot).
func FromOptions(opts typeurl.Any, namespace, bundle string) (Settings, error) {
	o, doc, err := decodeOptions(opts)
	if err != nil {
		return Settings{}, err
	}
	name := firstNonEmpty(o.BinaryName, doc.Runtime.Binary, ociruntime.DefaultBinary)
	binary, err := ociruntime.ResolveBinary(name)
	if err != nil {
		return Settings{}, err
	}
	root := firstNonEmpty(o.Root, doc.Runtime.Root, ociruntime.DefaultRoot)
	return Settings{
		Runtime: ociruntime.Config{
			Binary:        binary,
			Root:          ociruntime.StateRoot(root, namespace, bundle),
			SystemdCgroup: o.SystemdCgroup || doc.Runtime.SystemdCgroup,
			NoPivotRoot:   o.NoPivotRoot,
			NoNewKeyring:  o.NoNewKeyring,
		},
		IoUID:   int(o.IoUid),
		IoGID:   int(o.IoGid),
		Network: doc.Network,
	}, nil
}

// decodeOptions unpacks the runtime options. Absent options decode to zero
// runc options and the node's document; any other options type is
// rejected rather than ignored.
func decodeOptions(opts typeurl.Any) (*options.Options, Config, error) {
	if opts == nil || len(opts.GetValue()) == 0 {
		return withNodeConfig(&options.Options{})
	}
	v, err := typeurl.UnmarshalAny(opts)
	if err != nil {
		return nil, Config{}, fmt.Errorf("failed to decode runtime options %q: %w", opts.GetTypeUrl(), err)
	}
	switch o := v.(type) {
	case *options.Options:
		return withNodeConfig(o)
	case *runtimeoptions.Options:
		if len(o.ConfigBody) == 0 && o.ConfigPath == "" {
			return withNodeConfig(&options.Options{})
		}
		doc, err := document(o)
		if err != nil {
			return nil, Config{}, fmt.Errorf("%v: %w", err, errdefs.ErrInvalidArgument) //nolint:errorlint // one %w, the errdefs class: errgrpc sends the client every wrapped error
		}
		return &options.Options{}, doc, nil
	default:
		return nil, Config{}, fmt.Errorf("unsupported runtime options type %T, want %T or %T: %w",
			v, &options.Options{}, &runtimeoptions.Options{}, errdefs.ErrInvalidArgument)
	}
}

// withNodeConfig pairs runc options with the node's document.
func withNodeConfig(o *options.Options) (*options.Options, Config, error) {
	doc, err := LoadNode()
	if err != nil {
		return nil, Config{}, err
	}
	return o, doc, nil
}

// document reads the TOML document: ConfigBody (CRI inlines it) wins over
// ConfigPath.
func document(o *runtimeoptions.Options) (Config, error) {
	if len(o.ConfigBody) > 0 {
		return Parse(o.ConfigBody)
	}
	return Load(o.ConfigPath)
}

func firstNonEmpty(vals ...string) string {
	for _, v := range vals {
		if v != "" {
			return v
		}
	}
	return ""
}
