package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

var cloneFlags = map[specs.LinuxNamespaceType]uintptr{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.UserNamespace:    unix.CLONE_NEWUSER,
}

// joinFlags are setns(2) types for namespaces joined by path.
var joinFlags = map[specs.LinuxNamespaceType]int{
	specs.PIDNamespace:     unix.CLONE_NEWPID,
	specs.NetworkNamespace: unix.CLONE_NEWNET,
	specs.MountNamespace:   unix.CLONE_NEWNS,
	specs.IPCNamespace:     unix.CLONE_NEWIPC,
	specs.UTSNamespace:     unix.CLONE_NEWUTS,
	specs.CgroupNamespace:  unix.CLONE_NEWCGROUP,
}

// spawnOpts are how to start an init or exec process.
type spawnOpts struct {
	dir           string // working directory before the init moves on
	fifo          string // exec fifo; empty for exec
	consoleSocket string
	preserveFds   int
	attr          *syscall.SysProcAttr
	joins         []specs.LinuxNamespace // entered with setns before the fork
	// raw forks with forkExec, which execs the init by descriptor and can
	// join userns, a user namespace, after the fork; only attr.Setsid
	// applies then.
	raw    bool
	userns string
}

// initProcess is a started init and the parent's end of its sync socket.
type initProcess struct {
	proc *os.Process
	sync *os.File
	fds  initproc.Fds
}

// initSpawnOpts derives clone flags and namespaces to join from the spec.
func initSpawnOpts(s *specs.Spec) spawnOpts {
	attr := &syscall.SysProcAttr{Setsid: true, GidMappingsEnableSetgroups: true}
	var joins []specs.LinuxNamespace
	for _, ns := range s.Linux.Namespaces {
		switch {
		case ns.Path != "":
			joins = append(joins, ns)
		case ns.Type == specs.UserNamespace:
			attr.Cloneflags |= cloneFlags[ns.Type]
			attr.UidMappings = idMaps(s.Linux.UIDMappings)
			attr.GidMappings = idMaps(s.Linux.GIDMappings)
			// Become root of the new user namespace before exec, or the
			// exec would drop every capability the init needs to set up.
			attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		default:
			// The cgroup and time namespaces (absent from cloneFlags) are
			// unshared by the init: the cgroup one once it sits in its
			// cgroup, so its root is the container's cgroup; the time one
			// because clone(2) cannot create it.
			attr.Cloneflags |= cloneFlags[ns.Type]
		}
	}
	return spawnOpts{attr: attr, joins: joins}
}

// spawn starts `hostnet-runc init` from a sealed copy of this binary.
//
// New namespaces come from clone(2) flags. Namespaces joined by path are
// entered with setns(2) on a locked OS thread just before the fork, which the
// child inherits; that thread is never unlocked, so Go retires it afterwards
// instead of running other goroutines in the container's namespaces. This
// keeps the runtime pure Go, without a C constructor like runc's nsexec.
func spawn(o spawnOpts) (*initProcess, error) {
	self, err := sealedExecutable()
	if err != nil {
		return nil, err
	}
	defer self.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("create sync socket: %w", err)
	}
	parentEnd := os.NewFile(uintptr(pair[0]), "sync-parent")
	childEnd := os.NewFile(uintptr(pair[1]), "sync-child")
	defer childEnd.Close()
	fail := func(err error) (*initProcess, error) {
		parentEnd.Close()
		return nil, err
	}

	// Caller's fds 3..3+n-1 keep their numbers; ours follow. A raw fork
	// passes every fd under its own number instead.
	raw := o.raw && rawForkSupported
	if o.userns != "" && !raw {
		return fail(errors.New("exec into a container's user namespace is not supported on this architecture"))
	}
	var extra []*os.File
	for i := 0; i < o.preserveFds; i++ {
		extra = append(extra, os.NewFile(uintptr(3+i), "preserved-"+strconv.Itoa(3+i)))
	}
	next := func(f *os.File) int {
		extra = append(extra, f)
		if raw {
			return int(f.Fd())
		}
		return 2 + len(extra)
	}
	fds := initproc.Fds{Preserved: o.preserveFds, ConsoleSocket: -1, ExecFifo: -1}
	syncFd := next(childEnd)
	if o.fifo != "" {
		fifo, err := os.OpenFile(o.fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(fmt.Errorf("open exec fifo: %w", err))
		}
		defer fifo.Close()
		fds.ExecFifo = next(fifo)
	}
	if o.consoleSocket != "" {
		conn, err := net.Dial("unix", o.consoleSocket)
		if err != nil {
			return fail(fmt.Errorf("connect to console socket %s: %w", o.consoleSocket, err))
		}
		f, err := conn.(*net.UnixConn).File()
		conn.Close()
		if err != nil {
			return fail(fmt.Errorf("console socket: %w", err))
		}
		defer f.Close()
		fds.ConsoleSocket = next(f)
	}
	selfFd := next(self)

	cmd := &exec.Cmd{
		Path:        "/proc/self/fd/" + strconv.Itoa(selfFd),
		Args:        []string{"hostnet-runc", initproc.Command},
		Env:         []string{initproc.SyncFdEnv + "=" + strconv.Itoa(syncFd), "GOMAXPROCS=1"},
		Stdin:       os.Stdin,
		Stdout:      os.Stdout,
		Stderr:      os.Stderr,
		ExtraFiles:  extra,
		SysProcAttr: o.attr,
	}
	var userns *os.File
	if o.userns != "" {
		if userns, err = os.Open(o.userns); err != nil {
			return fail(fmt.Errorf("open user namespace: %w", err))
		}
		defer userns.Close()
	}
	var proc *os.Process
	err = inNamespaces(o.joins, o.dir, func() error {
		if raw {
			proc, err = forkExec(userns, self, cmd.Args, cmd.Env, o.attr != nil && o.attr.Setsid, extra)
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start container init: %w", err)
		}
		proc = cmd.Process
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return &initProcess{proc: proc, sync: parentEnd, fds: fds}, nil
}

// handshake sends the bootstrap and waits for the process to be ready,
// running runtimeHooks when the init asks for them.
func (p *initProcess) handshake(b initproc.Bootstrap, runtimeHooks func() error) error {
	b.Fds = p.fds
	enc, dec := json.NewEncoder(p.sync), json.NewDecoder(p.sync)
	if err := enc.Encode(b); err != nil {
		return fmt.Errorf("send bootstrap to init: %w", err)
	}
	for {
		var r initproc.Reply
		if err := dec.Decode(&r); err != nil {
			p.proc.Kill()
			st, werr := p.proc.Wait()
			if werr == nil {
				werr = fmt.Errorf("%s", st)
			}
			return fmt.Errorf("unable to start container process: init exited before it was ready (%v)", werr)
		}
		switch {
		case r.Hooks && runtimeHooks != nil:
			var res initproc.HookResult
			herr := runtimeHooks()
			if herr != nil {
				res.Error = herr.Error()
			}
			if err := enc.Encode(res); err != nil {
				return fmt.Errorf("answer init's hook request: %w", err)
			}
			if herr != nil {
				return herr
			}
		case r.Ready:
			return nil
		default:
			return fmt.Errorf("unable to start container process: %s", r.Error)
		}
	}
}

// setOOMScoreAdj is written by the parent, from the host's /proc and with
// all of its privileges: a negative score needs CAP_SYS_RESOURCE, which a
// container's init may not hold.
func (p *initProcess) setOOMScoreAdj(score *int) error {
	if score == nil {
		return nil
	}
	path := "/proc/" + strconv.Itoa(p.proc.Pid) + "/oom_score_adj"
	if err := os.WriteFile(path, []byte(strconv.Itoa(*score)), 0); err != nil {
		return fmt.Errorf("set oom_score_adj %d: %w", *score, err)
	}
	return nil
}

// kill stops a process that never became ready and reaps it.
func (p *initProcess) kill() {
	p.proc.Kill()
	p.proc.Wait()
}

func idMaps(in []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(in))
	for i, m := range in {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// inNamespaces runs start, which forks, on a thread that has joined the
// given namespaces and has dir as its working directory. The child inherits
// the directory instead of changing to it (cmd.Dir): in a new user
// namespace it would do so as the mapped root, an unprivileged uid on the
// host that may not be allowed into the bundle, while runc's child simply
// keeps its parent's.
func inNamespaces(joins []specs.LinuxNamespace, dir string, start func() error) error {
	if len(joins) == 0 && dir == "" {
		return start()
	}
	errc := make(chan error, 1)
	go func() {
		// Deliberately no UnlockOSThread: the thread dies with this goroutine.
		runtime.LockOSThread()
		errc <- func() error {
			// A working directory and a mount namespace of the thread's
			// own need an fs struct of its own.
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				return fmt.Errorf("unshare fs: %w", err)
			}
			for _, ns := range joins {
				if err := joinNamespace(ns); err != nil {
					return err
				}
			}
			if dir != "" {
				if err := unix.Chdir(dir); err != nil {
					return fmt.Errorf("chdir to bundle %s: %w", dir, err)
				}
			}
			return start()
		}()
	}()
	return <-errc
}

func joinNamespace(ns specs.LinuxNamespace) error {
	fd, err := unix.Open(ns.Path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s namespace %s: %w", ns.Type, ns.Path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, joinFlags[ns.Type]); err != nil {
		return fmt.Errorf("join %s namespace %s: %w", ns.Type, ns.Path, err)
	}
	return nil
}

// sealedExecutable copies our own binary into a sealed memfd and the init is
// exec'd from it (CVE-2019-5736): a container process that opens
// /proc/<init>/exe gets an immutable copy, never the host's binary.
func sealedExecutable() (*os.File, error) {
	fd, err := unix.MemfdCreate("hostnet-runc", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	mem := os.NewFile(uintptr(fd), "memfd:hostnet-runc")
	src, err := os.Open("/proc/self/exe")
	if err != nil {
		mem.Close()
		return nil, fmt.Errorf("open own executable: %w", err)
	}
	defer src.Close()
	if err := copyFile(mem, src); err != nil {
		mem.Close()
		return nil, fmt.Errorf("copy own executable to memfd: %w", err)
	}
	// Execute-only: the kernel makes a process exec'd from a file it
	// cannot read non-dumpable and keeps its mm in the host's user
	// namespace, so nothing in the container can ptrace the init or read
	// its memory while it sets up (the CVE-2016-9962 class).
	if err := mem.Chmod(0o111); err != nil {
		mem.Close()
		return nil, fmt.Errorf("chmod memfd: %w", err)
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(mem.Fd(), unix.F_ADD_SEALS, seals); err != nil {
		mem.Close()
		return nil, fmt.Errorf("seal memfd: %w", err)
	}
	return mem, nil
}

// copyFile copies src into dst with sendfile(2): a few syscalls in the
// kernel instead of hundreds of read/write pairs; copy_file_range, which
// io.Copy tries first, refuses to cross into a memfd.
func copyFile(dst, src *os.File) error {
	fi, err := src.Stat()
	if err != nil {
		return err
	}
	for remain := fi.Size(); remain > 0; {
		n, err := unix.Sendfile(int(dst.Fd()), int(src.Fd()), nil, int(remain))
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrUnexpectedEOF
		}
		remain -= int64(n)
	}
	return nil
}
