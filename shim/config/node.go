package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// DefaultPath is the node's hostnet configuration file, read when
// containerd's runtime options carry no hostnet document: no options at all
// (a CRI runtime without an options table, nerdctl, ctr without
// --runtime-config-path) or runc's options type, which containerd 2.x's CRI
// sends for user-namespaced pods whatever the handler (IoUid, IoGid). As
// gVisor's /etc/containerd/runsc.toml, it lets a CRI handler have both
// hostnet's settings and such pods.
const DefaultPath = "/etc/containerd/hostnet.toml"

// PathEnv, in containerd's environment (which its shims inherit), names
// the node's configuration file instead of DefaultPath.
const PathEnv = "HOSTNET_CONFIG"

// LoadNode reads the node's configuration: the file $HOSTNET_CONFIG names,
// else DefaultPath. A missing DefaultPath means the defaults; a file that
// cannot be read or parsed, or a missing one that $HOSTNET_CONFIG names, is
// an error naming it, so that a node never runs containers with settings
// other than its admin wrote.
func LoadNode() (Config, error) {
	return loadNode(os.Getenv(PathEnv), DefaultPath)
}

// LoadNodeAt is LoadNode with $HOSTNET_CONFIG as fromEnv: what a shim
// started with that environment reads (`hostnet doctor` asks it for
// containerd's).
func LoadNodeAt(fromEnv string) (Config, error) {
	return loadNode(fromEnv, DefaultPath)
}

func loadNode(fromEnv, defaultPath string) (Config, error) {
	if fromEnv == "" {
		c, err := Load(defaultPath)
		if errors.Is(err, fs.ErrNotExist) {
			return Defaults(), nil
		}
		return c, err
	}
	// The shim's working directory is a bundle, and differs between its
	// actions: a relative path would name a different file each time.
	if !filepath.IsAbs(fromEnv) {
		return Config{}, fmt.Errorf("%s=%q: must be an absolute path", PathEnv, fromEnv)
	}
	c, err := Load(fromEnv)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", PathEnv, err)
	}
	return c, nil
}
