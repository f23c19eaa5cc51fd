package initproc

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/hooks"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"
	"github.com/hostnet-dev/hostnet/runtime/seccomp"

	"github.com/hostnet-dev/hostnet/spec"
)

// Main runs the container init and never returns on success: the process
// becomes the user's program. It is started by the parent already inside the
// container's new namespaces and (after the parent's first message) cgroup.
func Main() {
	// Capabilities, no_new_privs and the uid are per-thread until execve,
	// which keeps only the calling thread: all of it must happen on one.
	runtime.LockOSThread()
	// Not dumpable until the user's program replaces us (execve resets
	// it): no process in the container may ptrace the init or open its
	// /proc files, which hold host descriptors, while it sets up. The exec
	// of the execute-only sealed binary made it so already (container's
	// dropReadCaps); this keeps it so where that could not be had.
	_ = unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	fd, err := strconv.Atoi(os.Getenv(SyncFdEnv))
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostnet-runc init: must be started by hostnet-runc create")
		os.Exit(1)
	}
	os.Unsetenv(SyncFdEnv)
	sync := os.NewFile(uintptr(fd), "sync")

	ch := &channel{sync: sync, enc: json.NewEncoder(sync), dec: json.NewDecoder(sync)}
	var b Bootstrap
	if err := ch.dec.Decode(&b); err != nil {
		ch.reply(fmt.Errorf("read bootstrap from parent: %w", err))
		os.Exit(1)
	}
	var fdDir *os.File
	if !b.Exec {
		if fdDir, err = ownFdDir(); err != nil {
			ch.reply(err)
			os.Exit(1)
		}
	}
	p, err := setup(linux{}, &b, ch)
	if err != nil {
		ch.reply(err)
		os.Exit(1)
	}
	if err := ch.reply(nil); err != nil {
		os.Exit(1)
	}
	sync.Close()
	if b.Exec {
		execProgram(p)
	}

	// Block until `start` opens the fifo for reading. The descriptor is an
	// O_PATH handle taken before pivot_root; the fifo itself stays outside.
	// It is reopened through the runtime's own procfs, not the container's,
	// with a single openat(2): a seccomp profile may be in place already.
	fifo, err := unix.Openat(int(fdDir.Fd()), strconv.Itoa(b.Fds.ExecFifo), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fatal(fmt.Errorf("open exec fifo: %w", err))
	}
	if _, err := unix.Write(fifo, []byte{'0'}); err != nil {
		fatal(fmt.Errorf("write exec fifo: %w", err))
	}
	if b.Spec.Hooks != nil {
		if err := hooks.Run("startContainer", b.Spec.Hooks.StartContainer, b.State); err != nil {
			fatal(err)
		}
	}
	// Our fds, the fifo included, are close-on-exec: `start` sees EOF as
	// soon as the user's program has replaced us.
	execProgram(p)
}

// setup readies the process: the container's (prepare) or one joining it
// (prepareExec), and then loads a seccomp profile prepare left for last.
func setup(sys Syscalls, b *Bootstrap, ch *channel) (*program, error) {
	prep := prepare
	if b.Exec {
		prep = prepareExec
	}
	p, err := prep(sys, b, ch)
	if err != nil || p.seccomp == nil {
		return p, err
	}
	// As close to execve as the listener allows, as runc does: the parent
	// is still here to take it, and the process only runs once its agent
	// has it. The fifo wait and the startContainer hooks come after, under
	// the profile, as with runc.
	return p, ch.loadSeccomp(sys, p.seccomp)
}

func execProgram(p *program) {
	if err := unix.Exec(p.path, p.args, p.env); err != nil {
		fatal(fmt.Errorf("exec %q: %w", p.path, err))
	}
}

// channel is the init's side of the sync socket.
type channel struct {
	sync *os.File
	enc  *json.Encoder
	dec  *json.Decoder
}

func (c *channel) reply(err error) error {
	r := Reply{Ready: err == nil}
	if err != nil {
		r.Error = err.Error()
	}
	return c.enc.Encode(r)
}

// runtimeHooks asks the parent to run the prestart and createRuntime hooks.
func (c *channel) runtimeHooks() error {
	if err := c.enc.Encode(Reply{Hooks: true}); err != nil {
		return fmt.Errorf("request hooks: %w", err)
	}
	var r HookResult
	if err := c.dec.Decode(&r); err != nil {
		return fmt.Errorf("wait for hooks: %w", err)
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}

// loadSeccomp installs the filter and, for SCMP_ACT_NOTIFY rules, hands
// its listener to the parent, which sends it on to the agent.
func (c *channel) loadSeccomp(sys Syscalls, f *seccomp.Filter) error {
	listener, err := sys.LoadSeccomp(f)
	if err != nil {
		return fmt.Errorf("load seccomp filter: %w", err)
	}
	if listener < 0 {
		return nil
	}
	defer unix.Close(listener)
	// The parent takes the descriptor with pidfd_getfd(2): passing it
	// with sendmsg(2) would be a system call the profile may notify on,
	// which nobody answers yet. Only write(2) must be free of that
	// (seccomp.Compile refuses SCMP_ACT_NOTIFY on it); a notified read(2)
	// waits for the agent, which the parent reaches without us.
	if err := c.enc.Encode(Reply{SeccompFd: &listener}); err != nil {
		return fmt.Errorf("report seccomp listener: %w", err)
	}
	var r SeccompFdResult
	if err := c.dec.Decode(&r); err != nil {
		return fmt.Errorf("wait for the parent to take the seccomp listener: %w", err)
	}
	if r.Error != "" {
		return errors.New(r.Error)
	}
	return nil
}

// fatal reports an error after create has returned: only the container's
// own stderr is left to tell.
func fatal(err error) {
	fmt.Fprintf(os.Stderr, "hostnet-runc init: %v\n", err)
	os.Exit(127)
}

// program is what will be exec'd.
type program struct {
	path string
	args []string
	env  []string
	// seccomp, when set, is loaded once the process is ready, as late as
	// the listener of SCMP_ACT_NOTIFY rules allows (see Main).
	seccomp *seccomp.Filter
}

// prepare does everything that can fail before the user's program runs, so
// that create, not start, reports it.
func prepare(sys Syscalls, b *Bootstrap, ch *channel) (*program, error) {
	s := b.Spec
	proc := s.Process
	// Device nodes and mount points get exactly the modes asked for.
	sys.Umask(0)

	hostMountNS := !spec.HasNamespace(s, specs.MountNamespace)
	if spec.NewNamespace(s, specs.NetworkNamespace) {
		// The kernel leaves lo down in a fresh network namespace.
		if err := sys.BringUpLoopback(); err != nil {
			return nil, fmt.Errorf("bring up lo: %w", err)
		}
	}
	if spec.HasNamespace(s, specs.TimeNamespace) {
		if err := enterTimeNamespace(sys, s.Linux.TimeOffsets); err != nil {
			return nil, err
		}
	}
	if !b.NoNewKeyring {
		// A session keyring of its own, so keys do not leak between
		// containers (or from the host) through the shared one.
		if err := sys.JoinSessionKeyring(b.State.ID); err != nil && !errors.Is(err, unix.ENOSYS) {
			return nil, fmt.Errorf("join session keyring: %w", err)
		}
	}
	if spec.NewNamespace(s, specs.CgroupNamespace) {
		// Done here, after the parent has put us in our cgroup, so the
		// namespace's root is the container's cgroup.
		if err := sys.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return nil, fmt.Errorf("unshare cgroup namespace: %w", err)
		}
	}
	cfg := &rootfs.Config{
		Rootfs:      b.Rootfs,
		Spec:        s,
		CgroupPaths: b.CgroupPaths,
		UserNS:      spec.HasNamespace(s, specs.UserNamespace),
		HostMountNS: hostMountNS,
		MountSource: ch.mountSource,
		Sys:         sys,
	}
	if s.Linux.MountLabel != "" && !selinuxEnabled() {
		return nil, fmt.Errorf("SELinux mount label %q is set but SELinux is not enabled on this host", s.Linux.MountLabel)
	}
	if err := rootfs.Prepare(cfg); err != nil {
		return nil, err
	}
	if h := s.Hooks; h != nil {
		if len(h.Prestart) > 0 || len(h.CreateRuntime) > 0 { //nolint:staticcheck // runc still runs prestart hooks
			if err := ch.runtimeHooks(); err != nil {
				return nil, err
			}
		}
		// In the container's namespaces, but still before pivot_root.
		if err := hooks.Run("createContainer", h.CreateContainer, b.State); err != nil {
			return nil, err
		}
	}
	pivot := rootfs.PivotRoot
	switch {
	case hostMountNS:
		pivot = rootfs.Chroot
	case b.NoPivot:
		pivot = rootfs.MoveRoot
	}
	if err := pivot(sys, b.Rootfs); err != nil {
		return nil, err
	}
	if proc.Terminal {
		if err := setupConsole(sys, b.Fds.ConsoleSocket, proc.ConsoleSize, true); err != nil {
			return nil, fmt.Errorf("set up console: %w", err)
		}
	}
	// Before Finalize: /proc/sys is usually among the read-only paths.
	if err := applySysctls(sys, s.Linux.Sysctl); err != nil {
		return nil, err
	}
	if err := rootfs.Finalize(sys, s); err != nil {
		return nil, err
	}
	if err := setHostname(sys, s); err != nil {
		return nil, err
	}

	return finishProcess(sys, b, ch)
}

// prepareExec readies a process joining a running container.
func prepareExec(sys Syscalls, b *Bootstrap, ch *channel) (*program, error) {
	sys.Umask(0)
	if b.Spec.Process.Terminal {
		if err := setupConsole(sys, b.Fds.ConsoleSocket, b.Spec.Process.ConsoleSize, false); err != nil {
			return nil, fmt.Errorf("set up console: %w", err)
		}
	}
	return finishProcess(sys, b, ch)
}

// finishProcess applies the process attributes shared by the init and exec:
// limits, working directory, user and capabilities, and finds the program.
func finishProcess(sys Syscalls, b *Bootstrap, ch *channel) (*program, error) {
	s, proc := b.Spec, b.Spec.Process
	// Before a seccomp profile may refuse the system calls it takes, so
	// that nothing of the runtime's reaches the user's program
	// (CVE-2024-21626).
	if err := sys.CloseExecFrom(3 + b.Fds.Preserved); err != nil {
		return nil, fmt.Errorf("mark fds close-on-exec: %w", err)
	}
	if err := setRlimits(sys, proc.Rlimits); err != nil {
		return nil, err
	}
	if s.Linux.Personality != nil {
		if err := setPersonality(sys, s.Linux.Personality); err != nil {
			return nil, err
		}
	}
	if proc.Scheduler != nil {
		if err := setScheduler(sys, proc.Scheduler); err != nil {
			return nil, err
		}
	}
	if proc.IOPriority != nil {
		if err := setIOPriority(sys, proc.IOPriority); err != nil {
			return nil, err
		}
	}
	var filter *seccomp.Filter
	if s.Linux.Seccomp != nil {
		f, err := seccomp.Compile(s.Linux.Seccomp)
		if err != nil {
			return nil, err // says "seccomp: " itself
		}
		filter = f
	}
	// The cwd is absolute (container.ValidateProcess); whether it can be
	// entered is only known here, in the container's root.
	if err := sys.Chdir(proc.Cwd); err != nil {
		return nil, fmt.Errorf("chdir to cwd (%q) set in config.json failed: %w", proc.Cwd, err)
	}

	env := withHome(proc.Env, proc.User.UID)
	path, err := lookPath(sys, proc.Args, env)
	if err != nil {
		return nil, err
	}
	// Before the seccomp profile, as runc does: the procfs handles the
	// writes go through take system calls a profile may refuse.
	if err := applyLSM(sys, proc.ApparmorProfile, proc.SelinuxLabel); err != nil {
		return nil, err
	}
	if filter != nil && !proc.NoNewPrivileges {
		// Without no_new_privs, loading a filter needs CAP_SYS_ADMIN, which
		// setUser may drop: load it now, as runc does.
		if err := ch.loadSeccomp(sys, filter); err != nil {
			return nil, err
		}
		filter = nil
	}
	if err := setUser(sys, proc); err != nil {
		return nil, err
	}
	if proc.NoNewPrivileges {
		if err := sys.SetNoNewPrivs(); err != nil {
			return nil, fmt.Errorf("set no_new_privs: %w", err)
		}
	}
	umask := 0o022
	if proc.User.Umask != nil {
		umask = int(*proc.User.Umask)
	}
	sys.Umask(umask)
	// CVE-2024-21626: a working directory inherited from the host through a
	// leaked fd would show as unreachable; refuse to run from there.
	if wd, err := sys.Getwd(); err != nil || !strings.HasPrefix(wd, "/") {
		return nil, fmt.Errorf("current working directory is outside of the container's root (%q)", wd)
	}
	return &program{path: path, args: proc.Args, env: env, seccomp: filter}, nil
}

func setHostname(sys Syscalls, s *specs.Spec) error {
	if s.Hostname == "" && s.Domainname == "" {
		return nil
	}
	if !spec.HasNamespace(s, specs.UTSNamespace) {
		return errors.New("unable to set hostname without a private UTS namespace")
	}
	if s.Hostname != "" {
		if err := sys.Sethostname(s.Hostname); err != nil {
			return fmt.Errorf("set hostname %q: %w", s.Hostname, err)
		}
	}
	if s.Domainname != "" {
		if err := sys.Setdomainname(s.Domainname); err != nil {
			return fmt.Errorf("set domainname %q: %w", s.Domainname, err)
		}
	}
	return nil
}

// applySysctls writes each key to the file spec.ParseSysctl names, the
// parse create checked the key's namespace with (spec.CheckSysctls).
func applySysctls(sys Syscalls, sysctls map[string]string) error {
	for key, value := range sysctls {
		sc, err := spec.ParseSysctl(key)
		if err != nil {
			return err
		}
		if err := sys.WriteProcFile("/proc/sys/"+sc.Path, value); err != nil {
			return fmt.Errorf("set sysctl %s: %w", key, err)
		}
	}
	return nil
}

// lookPath resolves the program in the container's root with its own PATH,
// so a missing binary fails create with the name the user typed. args is
// not empty (container.ValidateProcess).
func lookPath(sys Syscalls, args, env []string) (string, error) {
	name := args[0]
	if strings.Contains(name, "/") {
		if err := executable(sys, name); err != nil {
			return "", fmt.Errorf("exec: %q: %w", name, err)
		}
		return name, nil
	}
	pathEnv := ""
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		candidate := dir + "/" + name
		if executable(sys, candidate) == nil {
			return candidate, nil
		}
	}
	return "", fmt.Errorf("exec: %q: %w", name, exec.ErrNotFound)
}

func executable(sys Syscalls, path string) error {
	fi, err := sys.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() {
		return errors.New("is a directory")
	}
	if fi.Mode()&0o111 == 0 {
		return os.ErrPermission
	}
	return nil
}
