package ociruntime

const (
	// DefaultBinary is the OCI runtime the shim drives unless told otherwise.
	DefaultBinary = "hostnet-runc"
	// DefaultRoot is the runtime's state root; the containerd namespace is
	// appended so that namespaces cannot see each other's containers.
	DefaultRoot = "/run/containerd/hostnet-runc"
)

// Config is how the shim runs the OCI runtime for one container. What
// `shim delete` needs to delete the container after its shim died (the
// binary, its root and its cgroup driver) is saved in the bundle
// (bundle.WriteRuntime); the create flags are not.
type Config struct {
	// Binary is the absolute path of the runtime binary.
	Binary string `json:"binary"`
	// Root is the runtime's state directory, namespace included.
	Root          string `json:"root"`
	SystemdCgroup bool   `json:"systemd_cgroup,omitempty"`
	NoPivotRoot   bool   `json:"-"`
	NoNewKeyring  bool   `json:"-"`
}
