package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/hooks"
	"github.com/hostnet-dev/hostnet/runtime/initproc"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"

	"github.com/hostnet-dev/hostnet/spec"
)

// CreateOpts are the flags of `create`.
type CreateOpts struct {
	Bundle string
	// Spec, when set, is the bundle's config.json already loaded (with
	// LoadSpec) by the caller.
	Spec          *specs.Spec
	PidFile       string
	ConsoleSocket string
	// Console, instead of ConsoleSocket, is a connected socket to send the
	// pty master over: the foreground run's own.
	Console      *os.File
	PidfdSocket  string
	NoPivot      bool
	NoNewKeyring bool
	PreserveFds  int
	// SystemdCgroup makes systemd create the cgroup as a transient unit;
	// cgroupsPath is then "slice:prefix:name".
	SystemdCgroup bool
	// Warnf, when set, receives what runc logs as warnings, Debugf what
	// it logs with --debug.
	Warnf, Debugf func(format string, args ...any)
}

// warnUnknownCapabilities logs, with runc's words, the capability names the
// init will skip.
func warnUnknownCapabilities(warnf func(string, ...any), c *specs.LinuxCapabilities) {
	if unknown := initproc.UnknownCapabilities(c); len(unknown) > 0 && warnf != nil {
		warnf("ignoring unknown or unavailable capabilities: %v", unknown)
	}
}

// resetCPUAffinity undoes an affinity inherited from the runtime's caller
// once pid is in its cgroup. As runc's tryResetCPUAffinity, a failure is
// only a warning: the process is confined by its cgroup's cpuset anyway.
func resetCPUAffinity(warnf func(string, ...any), pid int) {
	if err := cgroups.ResetCPUAffinity(pid); err != nil && warnf != nil {
		warnf("%v", err)
	}
}

// Create sets a container up to the point where only exec remains: its init
// is in its namespaces and cgroup, the rootfs is pivoted, and it waits for
// Start. On any error everything made so far is undone.
func Create(root, id string, o CreateOpts) (err error) {
	if err := ValidateID(id); err != nil {
		return err
	}
	bundle, err := filepath.Abs(o.Bundle)
	if err != nil {
		return err
	}
	s := o.Spec
	if s == nil {
		if s, err = LoadSpec(bundle); err != nil {
			return err
		}
	}
	warnUnknownCapabilities(o.Warnf, s.Process.Capabilities)
	rootPath, err := RootfsPath(bundle, s)
	if err != nil {
		return err
	}
	cgUnit, cgPaths, err := resolveCgroup(s.Linux.CgroupsPath, id, o.SystemdCgroup)
	if err != nil {
		return err
	}

	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("create state root %s: %w", root, err)
	}
	dir := filepath.Join(root, id)
	if err := os.Mkdir(dir, 0o711); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("container with id exists: %s", id)
		}
		return fmt.Errorf("create state directory: %w", err)
	}
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
			os.RemoveAll(dir)
		}
	}()

	fifo := filepath.Join(dir, fifoName)
	if err := unix.Mkfifo(fifo, 0o622); err != nil {
		return fmt.Errorf("create exec fifo: %w", err)
	}
	// The umask took bits off; the init opens the fifo for writing as the
	// container's user, which need not be root, as runc does.
	if err := os.Chmod(fifo, 0o622); err != nil {
		return fmt.Errorf("chmod exec fifo: %w", err)
	}
	// In a user namespace the init is an unprivileged uid on the host; the
	// fifo must be its own to open, as runc does.
	if uid, gid := hostRootID(s.Linux.UIDMappings), hostRootID(s.Linux.GIDMappings); uid != 0 || gid != 0 {
		if err := os.Chown(fifo, uid, gid); err != nil {
			return fmt.Errorf("chown exec fifo: %w", err)
		}
	}
	var cg cgroups.Manager
	if cgUnit != nil {
		cg, err = cgroups.NewSystemd(*cgUnit, cgPaths, s.Linux.Resources)
	} else {
		cg, err = cgroups.New(cgPaths, s.Linux.Resources)
	}
	if err != nil {
		return err
	}
	undo = append(undo, func() { cg.Delete() })

	hostMountNS := !spec.HasNamespace(s, specs.MountNamespace)
	if hostMountNS {
		undo = append(undo, func() { _ = rootfs.Unmount(rootPath) })
	}
	so := initSpawnOpts(s)
	so.dir, so.fifo, so.consoleSocket, so.consoleConn = bundle, fifo, o.ConsoleSocket, o.Console
	so.root, so.debugf = root, o.Debugf
	// Sockets passed by systemd (socket activation) come first and the
	// process is told about them, as with runc.
	if n := listenFds(); n > 0 {
		s.Process.Env = append(s.Process.Env, "LISTEN_FDS="+strconv.Itoa(n), "LISTEN_PID=1")
		so.preserveFds = n
	}
	so.preserveFds += o.PreserveFds
	p, err := spawn(so)
	if err != nil {
		return err
	}
	defer p.sync.Close()
	undo = append(undo, p.kill)
	pid := p.proc.Pid
	uidMaps, gidMaps := s.Linux.UIDMappings, s.Linux.GIDMappings
	if so.userns != "" {
		if uidMaps, gidMaps, err = joinedUserNamespace(pid, s); err != nil {
			return err
		}
		// A spec that joins by path need not repeat the mappings: the
		// fifo is then the namespace root's now (the init opens it only
		// after start).
		if s.Linux.UIDMappings == nil {
			if err := os.Chown(fifo, hostRootID(uidMaps), hostRootID(gidMaps)); err != nil {
				return fmt.Errorf("chown exec fifo: %w", err)
			}
		}
	}
	if err := cg.Add(pid); err != nil {
		return fmt.Errorf("add init %d to cgroup %s: %w", pid, cgPaths, err)
	}
	resetCPUAffinity(o.Warnf, pid)
	debugf(o.Debugf, "container %s: init %d started in cgroup %s", id, pid, cgPaths)
	if o.PidfdSocket != "" {
		if err := sendPidfd(o.PidfdSocket, pid, "standard"); err != nil {
			return err
		}
	}
	if err := p.setOOMScoreAdj(s.Process.OOMScoreAdj); err != nil {
		return err
	}
	state := &specs.State{Version: s.Version, ID: id, Status: specs.StateCreating, Pid: pid, Bundle: bundle, Annotations: s.Annotations}
	runtimeHooks := func() error {
		if err := hooks.Run("prestart", s.Hooks.Prestart, state); err != nil { //nolint:staticcheck // runc still runs prestart hooks
			return err
		}
		return hooks.Run("createRuntime", s.Hooks.CreateRuntime, state)
	}
	if s.Hooks != nil {
		// The spec requires poststop hooks after a failed create hook too.
		undo = append(undo, func() { _ = hooks.Run("poststop", s.Hooks.Poststop, state) })
	}
	boot := initproc.Bootstrap{Spec: s, Rootfs: rootPath, NoPivot: o.NoPivot, NoNewKeyring: o.NoNewKeyring, CgroupPaths: cg.MountPaths(), State: state}
	sources := &mountSources{spec: s, bundle: bundle, pid: pid, hostMountNS: hostMountNS}
	if spec.HasNamespace(s, specs.UserNamespace) {
		sources.uidMaps, sources.gidMaps = uidMaps, gidMaps
	}
	defer sources.close()
	// The process's own state at this point, as runc sends it.
	agent := newSeccompAgent(s.Linux.Seccomp, *state)
	if err := p.handshake(boot, runtimeHooks, sources.open, agent); err != nil {
		return err
	}
	debugf(o.Debugf, "container %s: init %d ready, waiting for start", id, pid)

	start, _, err := processStart(pid)
	if err != nil {
		return fmt.Errorf("read start time of init %d: %w", pid, err)
	}
	c := &Container{Dir: dir, State: State{
		ID: id, Bundle: bundle, Rootfs: rootPath, InitPid: pid, InitStart: start,
		Created: time.Now().UTC(), Cgroup: cgPaths, CgroupUnit: cgUnit, Annotations: s.Annotations,
		OCIVersion: s.Version, Hooks: s.Hooks, Seccomp: s.Linux.Seccomp, HostMountNS: hostMountNS,
		Format: StateFormat,
	}}
	if err := c.save(); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("write pid file %s: %w", o.PidFile, err)
		}
	}
	// The init outlives us; whoever is its subreaper (the shim) reaps it.
	return p.proc.Release()
}

// resolveCgroup finds where the container's cgroup goes: a systemd unit
// and its paths with the systemd driver, else paths alone.
func resolveCgroup(cgroupsPath, id string, systemd bool) (*cgroups.Unit, cgroups.Paths, error) {
	if systemd {
		u, err := cgroups.ParseSystemdPath(cgroupsPath, id)
		if err != nil {
			return nil, nil, err
		}
		paths, err := cgroups.ResolveUnit(u)
		return &u, paths, err
	}
	if cgroupsPath == "" {
		cgroupsPath = cgroups.DefaultPath(id)
	}
	paths, err := cgroups.Resolve(cgroupsPath)
	return nil, paths, err
}

func debugf(f func(string, ...any), format string, args ...any) {
	if f != nil {
		f(format, args...)
	}
}

// hostRootID maps the container's root id to the host's through the spec's
// mappings; without a mapping it is 0.
func hostRootID(mappings []specs.LinuxIDMapping) int {
	const id = 0
	for _, m := range mappings {
		if id >= m.ContainerID && id < m.ContainerID+m.Size {
			return int(m.HostID + id - m.ContainerID)
		}
	}
	return int(id)
}

// listenFds is the number of sockets systemd passed to this process, from
// fd 3 on (sd_listen_fds(3)).
func listenFds() int {
	if pid, err := strconv.Atoi(os.Getenv("LISTEN_PID")); err != nil || pid != os.Getpid() {
		return 0
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}
