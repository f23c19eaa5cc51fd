package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// CRINamespace is the containerd namespace the CRI plugin keeps its images,
// sandboxes and containers in.
const CRINamespace = "k8s.io"

// CRIHandler is the runtime handler (a RuntimeClass's handler) StartCRI
// registers for the hostnet shim, as contrib/containerd-config.toml does:
// without an options table, hostnet's configuration in the node's file
// (Daemon.HostnetConfigPath, named by $HOSTNET_CONFIG in containerd's
// environment).
const CRIHandler = "hostnet"

// CRIRuncHandler is the handler StartCRI registers for containerd's runc
// shim when CRIConfig.RuncBinary is set.
const CRIRuncHandler = "runc"

// CRIRuncOptionsHandler is the handler StartCRI registers, when
// CRIConfig.RuncOptionsHandler is set, for the hostnet shim with runc's
// options type: runtime_type io.containerd.runc.v2 and runtime_path the
// hostnet shim. containerd 2.x's CRI starts the containers of
// user-namespaced pods with options only runc's type carries (IoUid,
// IoGid) and fails on any other handler that has options. The shim reads
// the node's file under these options too.
const CRIRuncOptionsHandler = "hostnet-runc-options"

// CRIConfigPathHandler is the handler StartCRI registers, when
// CRIConfig.ConfigPathHandler is set, for the hostnet shim with hostnet's
// document in its options table (ConfigPath), which containerd sends as
// runtimeoptions.
const CRIConfigPathHandler = "hostnet-configpath"

// CRIConfig is what StartCRI adds to the daemon's configuration so that
// containerd's CRI plugin can run pods with the hostnet runtime, without
// touching anything outside the daemon's directory and the test's own
// paths.
type CRIConfig struct {
	// SandboxImage is the pause image reference (pinned_images.sandbox).
	// Import it with ImportImageIn(CRINamespace, ...) before the first
	// RunPodSandbox: containerd pulls a missing sandbox image.
	SandboxImage string
	// CNIBinDirs and CNIConfDir are where CRI finds CNI plugins and network
	// configurations (cni.bin_dirs, cni.conf_dir).
	CNIBinDirs []string
	CNIConfDir string
	// PodAnnotations are the pod annotations CRI passes through to the OCI
	// specs of the pod's sandbox and containers (the runtime's
	// pod_annotations), e.g. "hostnet.containerd.io/*".
	PodAnnotations []string
	// HostnetConfig is hostnet's TOML configuration, the node's file of
	// CRIHandler (Daemon.HostnetConfigPath). StartCRI writes it into the
	// daemon's directory and appends a [runtime] table that puts
	// hostnet-runc's state there too, so it must not have one itself.
	HostnetConfig string
	// ConfigPathHandler, when set, registers CRIConfigPathHandler too,
	// with this document (as HostnetConfig, the same [runtime] table
	// appended) as its options' ConfigPath (containerd 2.x only).
	ConfigPathHandler string
	// RestrictOOMScoreAdj keeps CRI from giving containers an OOM score
	// adjustment below containerd's own (restrict_oom_score_adj); by
	// default a pod's sandbox asks for -998, which only a runtime with
	// CAP_SYS_RESOURCE can set (see CanLowerOOMScore).
	RestrictOOMScoreAdj bool
	// SystemdCgroup sets hostnet's [runtime] systemd_cgroup, as a node
	// whose kubelet uses the systemd cgroup driver needs.
	SystemdCgroup bool
	// RuncBinary, when set, registers the handler CRIRuncHandler too:
	// containerd's runc shim running this runc (BinaryName), with its
	// state in the daemon's directory, to compare hostnet's handler with
	// (containerd 2.x only).
	RuncBinary string
	// RuncOptionsHandler registers the handler CRIRuncOptionsHandler too,
	// with hostnet-runc's state in the daemon's directory (Root), the
	// node's file and PodAnnotations (containerd 2.x only).
	RuncOptionsHandler bool
}

// StartCRI is Start with containerd's CRI plugin configured for the
// hostnet runtime handler CRIHandler: CNI from cri's directories, network
// namespaces pinned under the daemon's state directory, no AppArmor or
// SELinux, the sandbox image of cri and the runtime's pod_annotations, and
// hostnet's configuration in the node's file. The CRI gRPC service is
// served on Address, next to containerd's own API. cfg.Namespace names the cgroup tree Stop removes:
// give pods a cgroup parent below /<cfg.Namespace>, never "k8s.io".
func StartCRI(ctx context.Context, cfg Config, cri CRIConfig) (*Daemon, error) {
	if cfg.Namespace == "" || cfg.Namespace == CRINamespace {
		return nil, fmt.Errorf("daemon: StartCRI needs a private Namespace for its cgroup tree, not %q", cfg.Namespace)
	}
	containerd, err := lookPath(cfg.Containerd, "containerd")
	if err != nil {
		return nil, err
	}
	major, release := Version(containerd)
	if cfg.ConfigVersion == 0 {
		cfg.ConfigVersion = configVersionFor(containerd)
	}
	// containerd 2.0 reads one cni.bin_dir; 2.1 added bin_dirs and
	// deprecated bin_dir.
	oneBinDir := major == 2 && strings.HasPrefix(strings.TrimPrefix(release, "v"), "2.0.")
	return start(ctx, cfg, "hostnet-cri-", func(d *Daemon) (string, error) {
		// hostnet-runc's state lives in the daemon's directory too.
		runtimeRoot := filepath.Join(d.Dir, "hostnet-runc")
		if err := os.MkdirAll(runtimeRoot, 0o700); err != nil {
			return "", err
		}
		d.runtimeRoots = append(d.runtimeRoots, runtimeRoot)
		document := func(doc string) []byte {
			body := strings.TrimRight(doc, "\n") + "\n\n[runtime]\nroot = " + tomlString(runtimeRoot) + "\n"
			if cri.SystemdCgroup {
				body += "systemd_cgroup = true\n"
			}
			return []byte(body)
		}
		if err := os.WriteFile(d.HostnetConfigPath(), document(cri.HostnetConfig), 0o644); err != nil {
			return "", err
		}
		if cfg.ConfigVersion < 3 {
			if cri.RuncBinary != "" || cri.RuncOptionsHandler || cri.ConfigPathHandler != "" {
				return "", errors.New("daemon: CRIConfig.RuncBinary, RuncOptionsHandler and ConfigPathHandler need containerd 2.x")
			}
			return d.criConfigV2(cri)
		}
		var configPath string
		if cri.ConfigPathHandler != "" {
			configPath = filepath.Join(d.Dir, "hostnet-configpath.toml")
			if err := os.WriteFile(configPath, document(cri.ConfigPathHandler), 0o644); err != nil {
				return "", err
			}
		}
		if cri.RuncBinary != "" {
			runcRoot := filepath.Join(d.Dir, "runc")
			if err := os.MkdirAll(runcRoot, 0o700); err != nil {
				return "", err
			}
			d.runtimeRoots = append(d.runtimeRoots, runcRoot)
		}
		return d.criConfig(cri, configPath, runtimeRoot, oneBinDir)
	})
}

// criConfigV2 is criConfig in version 2, for containerd 1.x: the same
// settings in the one CRI plugin of that version (as
// contrib/containerd-config-v2.toml registers hostnet).
func (d *Daemon) criConfigV2(cri CRIConfig) (string, error) {
	q := strconv.Quote
	if len(cri.CNIBinDirs) != 1 {
		return "", fmt.Errorf("daemon: containerd 1.x takes one CNI bin dir, not %q", cri.CNIBinDirs)
	}
	const cri1 = `[plugins."io.containerd.grpc.v1.cri"`
	lines := append(d.baseConfig(2, nriPlugin),
		cri1+`]`,
		"  sandbox_image = "+q(cri.SandboxImage))
	lines = append(lines, criRuntimeSettings(cri)...)
	return strings.Join(append(lines,
		"  disable_tcp_service = true",
		`  stream_server_address = "127.0.0.1"`,
		`  stream_server_port = "0"`,
		"  "+cri1+`.cni]`,
		"    bin_dir = "+q(cri.CNIBinDirs[0]),
		"    conf_dir = "+q(cri.CNIConfDir),
		"    max_conf_num = 1",
		"  "+cri1+`.registry]`,
		"    config_path = "+q(filepath.Join(d.Dir, "certs.d")),
		"  "+cri1+`.containerd]`,
		`    snapshotter = "overlayfs"`,
		"    default_runtime_name = "+q(CRIHandler),
		"    "+cri1+`.containerd.runtimes.`+CRIHandler+`]`,
		"      runtime_type = "+q(HostnetRuntime),
		"      pod_annotations = "+tomlList(cri.PodAnnotations, q),
		"",
	), "\n"), nil
}

// criRuntimeSettings are the CRI runtime settings both configuration
// versions spell alike, in the table of the CRI runtime plugin.
func criRuntimeSettings(cri CRIConfig) []string {
	return []string{
		"  enable_selinux = false",
		"  disable_apparmor = true",
		// CRI's pod netns mounts live under the daemon's state, not /var/run/netns.
		"  netns_mounts_under_state_dir = true",
		fmt.Sprintf("  restrict_oom_score_adj = %t", cri.RestrictOOMScoreAdj),
	}
}

func tomlList(ss []string, quote func(string) string) string {
	quoted := make([]string, len(ss))
	for i, s := range ss {
		quoted[i] = quote(s)
	}
	return "[" + strings.Join(quoted, ", ") + "]"
}

// criConfig renders a config version 3 file like config, plus the CRI
// plugins' settings; configPath is CRIConfigPathHandler's ConfigPath.
func (d *Daemon) criConfig(cri CRIConfig, configPath, runtimeRoot string, oneBinDir bool) (string, error) {
	q := tomlString
	list := func(ss []string) string { return tomlList(ss, q) }
	binDirs := "    bin_dirs = " + list(cri.CNIBinDirs)
	if oneBinDir {
		if len(cri.CNIBinDirs) != 1 {
			return "", fmt.Errorf("daemon: containerd 2.0 takes one CNI bin dir, not %q", cri.CNIBinDirs)
		}
		binDirs = "    bin_dir = " + q(cri.CNIBinDirs[0])
	}
	lines := append(d.baseConfig(3, nriPlugin),
		"[plugins.'io.containerd.cri.v1.images']",
		"  snapshotter = 'overlayfs'",
		"  [plugins.'io.containerd.cri.v1.images'.pinned_images]",
		"    sandbox = "+q(cri.SandboxImage),
		"  [plugins.'io.containerd.cri.v1.images'.registry]",
		// No hosts.toml anywhere: nothing configures a mirror.
		"    config_path = "+q(filepath.Join(d.Dir, "certs.d")),
		"",
		"[plugins.'io.containerd.cri.v1.runtime']")
	lines = append(lines, criRuntimeSettings(cri)...)
	lines = append(lines,
		"  [plugins.'io.containerd.cri.v1.runtime'.cni]",
		binDirs,
		"    conf_dir = "+q(cri.CNIConfDir),
		"    max_conf_num = 1",
		"  [plugins.'io.containerd.cri.v1.runtime'.containerd]",
		"    default_runtime_name = "+q(CRIHandler),
		"    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIHandler+"]",
		"      runtime_type = "+q(HostnetRuntime),
		"      pod_annotations = "+list(cri.PodAnnotations),
		"",
	)
	if configPath != "" {
		lines = append(lines,
			"    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIConfigPathHandler+"]",
			"      runtime_type = "+q(HostnetRuntime),
			"      pod_annotations = "+list(cri.PodAnnotations),
			"      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIConfigPathHandler+".options]",
			"        ConfigPath = "+q(configPath),
			"")
	}
	if cri.RuncBinary != "" {
		lines = append(lines,
			"    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIRuncHandler+"]",
			"      runtime_type = "+q(RuncRuntime),
			"      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIRuncHandler+".options]",
			"        BinaryName = "+q(cri.RuncBinary),
			"        Root = "+q(filepath.Join(d.Dir, "runc")),
			"")
	}
	if cri.RuncOptionsHandler {
		lines = append(lines,
			"    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIRuncOptionsHandler+"]",
			"      runtime_type = "+q(RuncRuntime),
			"      runtime_path = "+q(filepath.Join(d.binDir, "containerd-shim-hostnet-v1")),
			"      pod_annotations = "+list(cri.PodAnnotations),
			"      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes."+CRIRuncOptionsHandler+".options]",
			"        Root = "+q(runtimeRoot),
			"        SystemdCgroup = "+strconv.FormatBool(cri.SystemdCgroup),
			"")
	}
	return strings.Join(append(lines,
		"[plugins.'io.containerd.grpc.v1.cri']",
		"  disable_tcp_service = true",
		"  stream_server_address = '127.0.0.1'",
		"  stream_server_port = '0'",
		"",
	), "\n"), nil
}

// CtrIn is Ctr in containerd namespace ns instead of d.Namespace.
func (d *Daemon) CtrIn(ctx context.Context, ns string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.ctr, append([]string{"--address", d.Address, "--namespace", ns}, args...)...)
	cmd.Env = d.env
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// ImportImageIn imports an OCI archive into namespace ns with `ctr images
// import`, with the label CRI gives the images it manages, so that CRI
// lists and uses it like a pulled image.
func (d *Daemon) ImportImageIn(ctx context.Context, ns, archive string) error {
	args := []string{"images", "import", "--label", "io.cri-containerd.image=managed", archive}
	if d.configVersion < 3 {
		// containerd 1.x: its ctr has no --label, and its CRI lists every
		// image of its namespace, labelled or not.
		args = []string{"images", "import", archive}
	}
	cmd := d.CtrIn(ctx, ns, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return &CtrError{Args: args, Err: err, Stderr: stderr.String()}
	}
	return nil
}

// CanLowerOOMScore reports whether this process holds CAP_SYS_RESOURCE, which
// setting a negative oom_score_adj (CRI's -998 for a sandbox) takes, for
// runc as for hostnet-runc. Some sandboxed machines withhold it even from
// root; there, StartCRI's callers set RestrictOOMScoreAdj.
func CanLowerOOMScore() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && caps&(1<<unix.CAP_SYS_RESOURCE) != 0
		}
	}
	return false
}
