// Package daemon runs a private containerd for hostnet's integration tests
// and benchmarks.
//
// Everything the daemon owns (root, state, sockets, FIFOs, log) lives in one
// temporary directory. The repository's bin/ comes first on the daemon's
// PATH, so containerd resolves io.containerd.hostnet.v1 to the freshly built
// containerd-shim-hostnet-v1. Stop tears everything down by pid and by path,
// never by process name, so it is safe next to a system containerd.
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

	"github.com/containerd/containerd/v2/client"

	"github.com/hostnet-dev/hostnet/integration/internal/image"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
)

// HostnetRuntime is the runtime name containerd maps to containerd-shim-hostnet-v1.
const HostnetRuntime = "io.containerd.hostnet.v1"

// RuncRuntime is containerd's stock runc shim, used as the baseline.
const RuncRuntime = "io.containerd.runc.v2"

// Config configures Start. The zero value is usable once BinDir is set.
type Config struct {
	// BinDir is put first on the daemon's PATH; it should hold the hostnet
	// shim and hostnet-runc.
	BinDir string
	// Containerd and Ctr are the binaries to use; looked up on PATH if empty.
	Containerd string
	Ctr        string
	// Namespace is the containerd namespace the helpers use. Pick a name
	// that no other containerd on the machine uses: Stop removes the
	// cgroups below /<Namespace> that runtimes left behind.
	Namespace string
	// RuntimeRoots are the state roots of the OCI runtimes the shims call
	// (runc's --root). Stop removes the daemon's directories in each of
	// them (RuntimeStateRoot).
	RuntimeRoots []string
	// StartTimeout bounds how long Start waits for the socket; 30s if zero.
	StartTimeout time.Duration
	// TempDir is where the daemon's directory is created; os.TempDir() if
	// empty.
	TempDir string
	// Command, when set, runs containerd through it (e.g. into a sandbox's
	// namespaces). Its processes then have pids of another namespace and
	// its mounts and cgroups are the sandbox's: Stop leaves them to the
	// sandbox's teardown.
	Command func(name string, args ...string) *exec.Cmd
	// ConfigVersion is the version of the configuration file to write: 3
	// for containerd 2.x, 2 for containerd 1.x (which has no CRI runtime
	// entry for hostnet then: the CRI plugin is disabled). Zero asks the
	// binary (`containerd --version`).
	ConfigVersion int
	// NetNS, when set, runs containerd (and so its shims and host-mode
	// containers) in a network namespace of its own, pinned at NetNSPath
	// across restarts and removed by Stop: a test of what clients do to
	// "the host's" network then works on a namespace it owns. Run clients
	// that change the network (ctr --cni, nerdctl) in it with InNetNS.
	NetNS bool
	// Strace, when set, runs containerd under `strace -f --seccomp-bpf
	// -ttt -e trace=execve`, writing to this file: every exec and exit of
	// containerd, its shims, their runtimes and containers, with its
	// timestamp (the bench's breakdown). --seccomp-bpf stops the tracees
	// only at execve, fork and exit, not at every system call. Pid stays
	// containerd's; Stop stops containerd, and strace ends with its last
	// tracee.
	Strace string
}

// Daemon is a running private containerd.
type Daemon struct {
	// Dir is the temporary directory holding everything below.
	Dir string
	// Root and State are containerd's root and state directories.
	Root, State string
	// Address is the gRPC socket, for `ctr -a` and client.New.
	Address string
	// FIFODir is where ctr and the client create the task I/O FIFOs.
	FIFODir string
	// LogPath is the daemon's combined stdout and stderr.
	LogPath string
	// Namespace is the containerd namespace of the helpers.
	Namespace string
	// binDir holds the hostnet binaries (Config.BinDir, absolute).
	binDir string

	runtimeRoots []string
	command      func(name string, args ...string) *exec.Cmd
	ownNetNS     bool
	strace       string
	// tracedPid is containerd's pid when it runs under strace (cmd is
	// strace then).
	tracedPid int

	ctr          string
	env          []string
	containerd   string
	configPath   string
	startTimeout time.Duration
	cmd          *exec.Cmd
	exitc        chan error
	log          *os.File

	// configVersion is the configuration file's version: 2 for containerd 1.x.
	configVersion int
}

// Start creates a temporary directory, writes a configuration file into it
// (version 3, or 2 for containerd 1.x) and starts containerd. On error nothing is left behind.
func Start(ctx context.Context, cfg Config) (_ *Daemon, retErr error) {
	return start(ctx, cfg, "hostnet-containerd-", nil)
}

// start creates the daemon's directory and configuration and starts it.
// render writes the configuration; nil picks the plain one for the binary's
// version.
func start(ctx context.Context, cfg Config, prefix string, render func(*Daemon) (string, error)) (_ *Daemon, retErr error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	containerd, err := lookPath(cfg.Containerd, "containerd")
	if err != nil {
		return nil, err
	}
	ctr, err := lookPath(cfg.Ctr, "ctr")
	if err != nil {
		return nil, err
	}
	binDir, err := filepath.Abs(cfg.BinDir)
	if err != nil {
		return nil, err
	}

	dir, err := os.MkdirTemp(cfg.TempDir, prefix)
	if err != nil {
		return nil, err
	}
	d := &Daemon{
		Dir:       dir,
		Root:      filepath.Join(dir, "root"),
		State:     filepath.Join(dir, "state"),
		Address:   filepath.Join(dir, "containerd.sock"),
		FIFODir:   filepath.Join(dir, "fifo"),
		LogPath:   filepath.Join(dir, "containerd.log"),
		Namespace: cfg.Namespace,
		binDir:    binDir,

		runtimeRoots: cfg.RuntimeRoots,
		ownNetNS:     cfg.NetNS,
		command:      cfg.Command,
		strace:       cfg.Strace,
		ctr:          ctr,
		env:          append(withoutEnv(os.Environ(), "PATH", "CONTAINERD_ADDRESS", "CONTAINERD_NAMESPACE"), "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH")),
	}
	defer func() {
		if retErr != nil {
			retErr = errors.Join(retErr, d.Stop())
		}
	}()

	// 0711 as containerd makes its root and state: the root user of a
	// container's user namespace is an unprivileged uid on the host and
	// must be able to walk to the bundle.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, err
	}
	for _, p := range []string{d.Root, d.State, d.FIFODir} {
		if err := os.MkdirAll(p, 0o711); err != nil {
			return nil, err
		}
	}
	if cfg.ConfigVersion == 0 {
		cfg.ConfigVersion = configVersionFor(containerd)
	}
	d.configVersion = cfg.ConfigVersion
	if render == nil {
		render = func(d *Daemon) (string, error) {
			if cfg.ConfigVersion < 3 {
				return d.configV2(), nil
			}
			return d.config(), nil
		}
	}
	if cfg.NetNS {
		if err := d.createNetNS(); err != nil {
			return nil, err
		}
	}
	// The node's hostnet configuration (config.PathEnv, which the shims
	// inherit) is the daemon's own, so that the machine's
	// /etc/containerd/hostnet.toml changes no test: empty unless render
	// writes one.
	if err := os.WriteFile(d.HostnetConfigPath(), nil, 0o644); err != nil {
		return nil, err
	}
	d.env = append(withoutEnv(d.env, config.PathEnv), config.PathEnv+"="+d.HostnetConfigPath())
	configPath := filepath.Join(dir, "config.toml")
	cfgText, err := render(d)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(configPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}
	if d.log, err = os.Create(d.LogPath); err != nil {
		return nil, err
	}
	d.containerd, d.configPath, d.startTimeout = containerd, configPath, cfg.StartTimeout
	if err := d.launch(); err != nil {
		return nil, err
	}
	if err := d.waitReady(ctx, cfg.StartTimeout); err != nil {
		return nil, fmt.Errorf("containerd did not come up: %w\n%s", err, d.LogTail(30))
	}
	return d, nil
}

// launch starts the containerd process on d's configuration.
func (d *Daemon) launch() error {
	cmd := exec.Command(d.containerd, "--config", d.configPath)
	if d.ownNetNS {
		// nsenter execs containerd in the same process: d.cmd's pid is
		// containerd's.
		cmd = exec.Command("nsenter", "--net="+d.NetNSPath(), "--", d.containerd, "--config", d.configPath)
	}
	if d.command != nil {
		cmd = d.command(d.containerd, "--config", d.configPath)
	}
	if d.strace != "" {
		cmd = exec.Command("strace", append([]string{"-f", "--seccomp-bpf", "-q", "-ttt", "-s", "256",
			"-e", "trace=execve", "-e", "signal=none", "-o", d.strace, "--"}, cmd.Args...)...)
	}
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = d.log, d.log
	// Own process group, so a Ctrl-C meant for `go test` does not kill the
	// daemon before Stop has cleaned up after it. (Command may have set
	// other attributes, such as the cgroup to start in.)
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		return err
	}
	exitc := make(chan error, 1)
	go func() { exitc <- cmd.Wait() }()
	d.cmd, d.exitc = cmd, exitc
	if d.strace != "" {
		return d.findTraced()
	}
	return nil
}

// findTraced records the pid of strace's child, containerd.
func (d *Daemon) findTraced() error {
	p := fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid)
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !d.exited(); time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(p); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				d.tracedPid, err = strconv.Atoi(f[0])
				return err
			}
		}
	}
	return errors.New("strace did not start containerd")
}

// Restart stops containerd by its pid with SIGTERM, leaving the shims and
// their tasks running, and starts it again on the same configuration (root,
// state, sockets), then waits until it serves. Clients connected before
// reconnect on their own. Shims that containerd started before the restart
// are reloaded from its state directory.
func (d *Daemon) Restart(ctx context.Context) error {
	if d.cmd == nil || d.cmd.Process == nil || d.exited() {
		return errors.New("containerd is not running")
	}
	if d.strace != "" {
		// strace would wait for the shims, its tracees, to exit.
		return errors.New("restart of a traced containerd is not supported")
	}
	if err := d.stopDaemon(); err != nil {
		return err
	}
	fmt.Fprintf(d.log, "\n=== hostnet test harness: restarting containerd (was pid %d) ===\n", d.cmd.Process.Pid)
	if err := d.launch(); err != nil {
		return err
	}
	if err := d.waitReady(ctx, d.startTimeout); err != nil {
		return fmt.Errorf("containerd did not come back up: %w\n%s", err, d.LogTail(30))
	}
	return nil
}

// baseConfig is what every configuration of the daemon shares: private
// paths, sockets and no plugin that would reach outside Dir.
func (d *Daemon) baseConfig(version int, disabled ...string) []string {
	q := tomlString
	quoted := make([]string, len(disabled))
	for i, p := range disabled {
		quoted[i] = q(p)
	}
	return []string{
		fmt.Sprintf("version = %d", version),
		"root = " + q(d.Root),
		"state = " + q(d.State),
		"disabled_plugins = [" + strings.Join(quoted, ", ") + "]",
		"",
		"[grpc]",
		"  address = " + q(d.Address),
		"",
		"[ttrpc]",
		"  address = " + q(d.Address+".ttrpc"),
		"",
		"[debug]",
		"  address = " + q(filepath.Join(d.Dir, "debug.sock")),
		"  level = 'info'",
		"",
		"[plugins.'io.containerd.internal.v1.opt']",
		"  path = " + q(filepath.Join(d.Dir, "opt")),
		"",
	}
}

// nriPlugin listens on a fixed socket under /var/run: it is left to the
// system's containerd.
const nriPlugin = "io.containerd.nri.v1.nri"

// config renders the daemon's configuration, with the hostnet runtime
// registered for CRI.
func (d *Daemon) config() string {
	return strings.Join(append(d.baseConfig(3, nriPlugin),
		"[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.hostnet]",
		"  runtime_type = "+tomlString(HostnetRuntime),
		"",
	), "\n")
}

// configV2 renders the same private configuration in version 2, for
// containerd 1.x. The CRI plugin is disabled: its version 2 configuration
// differs and the tests drive containerd through ctr and the client.
func (d *Daemon) configV2() string {
	return strings.Join(d.baseConfig(2, nriPlugin, "io.containerd.grpc.v1.cri"), "\n")
}

// tomlString quotes s as a TOML literal string.
func tomlString(s string) string { return "'" + s + "'" }

// Version returns the major version `containerd --version` reports for the
// binary, or 0 if it cannot tell. Output looks like
// "containerd github.com/containerd/containerd/v2 v2.4.2 <commit>" or, from
// Debian, "containerd github.com/containerd/containerd 1.6.20~ds1 ...".
func Version(containerd string) (major int, full string) {
	out, err := exec.Command(containerd, "--version").Output()
	if err != nil {
		return 0, ""
	}
	fields := strings.Fields(string(out))
	for _, f := range fields[min(2, len(fields)):] {
		v := strings.TrimPrefix(f, "v")
		if m, _, ok := strings.Cut(v, "."); ok {
			if n, err := strconv.Atoi(m); err == nil {
				return n, f
			}
		}
	}
	return 0, strings.TrimSpace(string(out))
}

func configVersionFor(containerd string) int {
	if major, _ := Version(containerd); major == 1 {
		return 2
	}
	return 3
}

func (d *Daemon) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(d.Address); err == nil {
			c, err := client.New(d.Address, client.WithTimeout(time.Second))
			if err == nil {
				_, err = c.Version(ctx)
				c.Close()
				if err == nil {
					return nil
				}
			}
		}
		select {
		case err := <-d.exitc:
			d.exitc <- err
			return fmt.Errorf("containerd exited: %w", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Pid returns the daemon's process id.
func (d *Daemon) Pid() int {
	if d.tracedPid != 0 {
		return d.tracedPid
	}
	return d.cmd.Process.Pid
}

// HostnetConfigPath is the daemon's node configuration file for hostnet,
// in its directory, which its shims read (config.PathEnv names it in
// containerd's environment) for runtime options without a hostnet
// document.
func (d *Daemon) HostnetConfigPath() string { return filepath.Join(d.Dir, "hostnet.toml") }

// Env returns the environment the daemon runs with (bin/ first on PATH),
// for commands that should find the same binaries.
func (d *Daemon) Env() []string { return append([]string(nil), d.env...) }

// Client connects a containerd client to the daemon, in d.Namespace.
func (d *Daemon) Client() (*client.Client, error) {
	return client.New(d.Address, client.WithDefaultNamespace(d.Namespace))
}

// Ctr returns `ctr -a <socket> -n <namespace> args...`, ready to run.
func (d *Daemon) Ctr(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, d.ctr, append([]string{"--address", d.Address, "--namespace", d.Namespace}, args...)...)
	cmd.Env = d.env
	// If the context ends first, ctr gets SIGTERM and a moment to clean up
	// its container before it is killed.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	// Do not outlive the test binary, e.g. after an interrupt.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// CtrOutput runs ctr and returns its stdout; on failure the error carries
// the exit status and stderr.
func (d *Daemon) CtrOutput(ctx context.Context, args ...string) (string, error) {
	cmd := d.Ctr(ctx, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &CtrError{Args: args, Err: err, Stderr: stderr.String()}
	}
	return stdout.String(), nil
}

// CtrError is a failed ctr command.
type CtrError struct {
	Args   []string
	Err    error
	Stderr string
}

func (e *CtrError) Error() string {
	return fmt.Sprintf("ctr %s: %v: %s", strings.Join(e.Args, " "), e.Err, strings.TrimSpace(e.Stderr))
}

func (e *CtrError) Unwrap() error { return e.Err }

// ExitCode is ctr's exit status, or -1 if it did not exit normally.
func (e *CtrError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// ImportImage imports an OCI archive with `ctr images import`.
func (d *Daemon) ImportImage(ctx context.Context, archive string) error {
	_, err := d.CtrOutput(ctx, "images", "import", archive)
	return err
}

// ImportBusybox builds the tests' busybox image (image.Options{}) into the
// daemon's directory and imports it.
func (d *Daemon) ImportBusybox(ctx context.Context) error {
	archive := filepath.Join(d.Dir, "busybox.tar")
	if _, err := image.WriteFile(archive, image.Options{}); err != nil {
		return err
	}
	return d.ImportImage(ctx, archive)
}

// ShimPids finds the running shims of this daemon by their command line,
// `containerd-shim-* -namespace <ns> -id <id> -address <Address>`, and
// returns their pids by container id. The socket path is unique to the
// daemon, so shims of other containerds never match.
func (d *Daemon) ShimPids() (map[string]int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return nil, err
	}
	pids := map[string]int{}
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") || flagValue(argv, "-address") != d.Address {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil || !Alive(pid) {
			continue
		}
		pids[flagValue(argv, "-id")] = pid
	}
	return pids, nil
}

// flagValue returns the argument after flag in argv, or "".
func flagValue(argv []string, flag string) string {
	for i, a := range argv[:len(argv)-1] {
		if a == flag || a == "-"+flag {
			return argv[i+1]
		}
	}
	return ""
}

// TaskDir is the task's bundle directory in containerd's state.
func (d *Daemon) TaskDir(id string) string {
	return filepath.Join(d.State, "io.containerd.runtime.v2.task", d.Namespace, id)
}

// RuntimeStateRoot is the directory the shim of runtime keeps the state of
// this daemon's containers in, in its OCI runtime's state root root: runc's
// shim uses <root>/<Namespace>, hostnet's one per namespace of each
// containerd (ociruntime.StateRoot, from any of the namespace's bundles).
func (d *Daemon) RuntimeStateRoot(runtime, root string) string {
	if runtime == HostnetRuntime {
		return ociruntime.StateRoot(root, d.Namespace, d.TaskDir("any"))
	}
	return filepath.Join(root, d.Namespace)
}

// LogTail returns the last n lines of the daemon's log.
func (d *Daemon) LogTail(n int) string {
	b, err := os.ReadFile(d.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// lookPath finds a tool and resolves symlinks, so the path also works in a
// sandbox that sees the tool's real directory but not the link (setup.sh
// links /usr/local/bin/containerd into /var/cache/hostnet).
func lookPath(given, name string) (string, error) {
	if given != "" {
		name = given
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found (run contrib/setup.sh): %w", name, err)
	}
	return filepath.EvalSymlinks(p)
}

// ContainerdDir is the real directory of the containerd binary Start runs
// by default: a sandbox that runs the daemon (systemdbox) must see it.
func ContainerdDir() (string, error) {
	p, err := lookPath("", "containerd")
	if err != nil {
		return "", err
	}
	return filepath.Dir(p), nil
}

func withoutEnv(env []string, keys ...string) []string {
	out := env[:0:0]
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		drop := false
		for _, key := range keys {
			drop = drop || k == key
		}
		if !drop {
			out = append(out, kv)
		}
	}
	return out
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil || pid <= 0 {
		return 0, fmt.Errorf("%s: bad pid %q", path, b)
	}
	return pid, nil
}
