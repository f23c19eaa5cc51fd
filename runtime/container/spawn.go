package container

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"runtime"
	"strconv"

	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
	"github.com/hostnet-dev/hostnet/runtime/internal/exeseal"
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
	// consoleConn, instead of consoleSocket, is a connected socket of the
	// caller's own to send the pty master over (a foreground run or exec).
	consoleConn *os.File
	// preserveFds is how many of the caller's descriptors, from 3 on, the
	// process gets (--preserve-fds, and LISTEN_FDS for create).
	preserveFds int
	// cloneFlags are the namespaces the process gets new; a new user
	// namespace gets uidMaps and gidMaps.
	cloneFlags       uintptr
	uidMaps, gidMaps []specs.LinuxIDMapping
	setsid           bool
	joins            []specs.LinuxNamespace // entered with setns before the fork
	// userns is a user namespace the child joins after the fork: setns(2)
	// refuses it to a multi-threaded caller. The namespaces of cloneFlags
	// are then created in it.
	userns string
	// root is the state root, where the binary is sealed once per build;
	// debugf says why it is copied into a memfd instead.
	root   string
	debugf func(format string, args ...any)
}

// initProcess is a started init and the parent's end of its sync socket.
type initProcess struct {
	proc *os.Process
	sync *os.File
	fds  initproc.Fds
}

// initSpawnOpts derives clone flags and namespaces to join from the spec.
func initSpawnOpts(s *specs.Spec) spawnOpts {
	o := spawnOpts{setsid: true}
	for _, ns := range s.Linux.Namespaces {
		switch {
		case ns.Path != "" && ns.Type == specs.UserNamespace:
			// Joined by the child (setns(2) refuses it to a threaded
			// caller), which then creates the new namespaces in it.
			o.userns = ns.Path
		case ns.Path != "":
			o.joins = append(o.joins, ns)
		case ns.Type == specs.UserNamespace:
			o.cloneFlags |= cloneFlags[ns.Type]
			o.uidMaps, o.gidMaps = s.Linux.UIDMappings, s.Linux.GIDMappings
		default:
			// The cgroup and time namespaces (absent from cloneFlags) are
			// unshared by the init: the cgroup one once it sits in its
			// cgroup, so its root is the container's cgroup; the time one
			// because clone(2) cannot create it.
			o.cloneFlags |= cloneFlags[ns.Type]
		}
	}
	return o
}

// spawn starts `hostnet-runc init` from this binary as exeseal gives it
// (sealed once per build, execute-only, not writable from the container:
// CVE-2019-5736), for create and exec alike.
//
// New namespaces come from clone(2) flags. Namespaces joined by path are
// entered with setns(2) on a locked OS thread just before the fork, which the
// child inherits; that thread is never unlocked, so Go retires it afterwards
// instead of running other goroutines in the container's namespaces. The
// child is exec'd by descriptor (execveat), never through a /proc path
// resolved in a mount namespace it may have joined. This keeps the runtime
// pure Go, without a C constructor like runc's nsexec.
func spawn(o spawnOpts) (*initProcess, error) {
	// First, before this process opens anything under a number the caller
	// left free.
	if err := checkPreservedFds(o.preserveFds); err != nil {
		return nil, err
	}
	// The caller's other descriptors (a lock it holds, say) stay with the
	// caller. Before Linux 5.11 they reach the init, which keeps them from
	// the process (initproc.closeExtraFds).
	_ = unix.CloseRange(uint(3+o.preserveFds), math.MaxUint32, unix.CLOSE_RANGE_CLOEXEC)
	self, err := exeseal.Executable(o.root, o.debugf)
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

	// The caller's fds 3..3+n-1 are inherited as they are; ours keep
	// their numbers, which are above those.
	f := forkSpec{exe: self, cloneFlags: o.cloneFlags, setsid: o.setsid, preserved: o.preserveFds, keep: []*os.File{childEnd}}
	fds := initproc.Fds{Preserved: o.preserveFds, ConsoleSocket: -1, ExecFifo: -1}
	if o.fifo != "" {
		fifo, err := os.OpenFile(o.fifo, unix.O_PATH|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail(fmt.Errorf("open exec fifo: %w", err))
		}
		defer fifo.Close()
		fds.ExecFifo = int(fifo.Fd())
		f.keep = append(f.keep, fifo)
	}
	if o.consoleSocket != "" {
		conn, err := net.Dial("unix", o.consoleSocket)
		if err != nil {
			return fail(fmt.Errorf("connect to console socket %s: %w", o.consoleSocket, err))
		}
		sock, err := conn.(*net.UnixConn).File()
		conn.Close()
		if err != nil {
			return fail(fmt.Errorf("console socket: %w", err))
		}
		defer sock.Close()
		fds.ConsoleSocket = int(sock.Fd())
		f.keep = append(f.keep, sock)
	} else if o.consoleConn != nil {
		fds.ConsoleSocket = int(o.consoleConn.Fd())
		f.keep = append(f.keep, o.consoleConn)
	}
	f.argv = []string{"hostnet-runc", initproc.Command}
	f.env = []string{initproc.SyncFdEnv + "=" + strconv.Itoa(int(childEnd.Fd())), "GOMAXPROCS=1"}
	if o.cloneFlags&unix.CLONE_NEWUSER != 0 {
		// Written by this process once the child exists, through a procfs
		// opened before this thread joins a mount namespace.
		f.uidMaps, f.gidMaps = o.uidMaps, o.gidMaps
		if f.proc, err = procfs.OpenProcRoot(); err != nil {
			return fail(fmt.Errorf("open procfs: %w", err))
		}
		defer f.proc.Close()
	}
	if o.userns != "" {
		if f.userns, err = os.Open(o.userns); err != nil {
			return fail(fmt.Errorf("open user namespace: %w", err))
		}
		defer f.userns.Close()
	}
	var proc *os.Process
	err = inNamespaces(o.joins, o.dir, func() error {
		proc, err = forkExec(&f)
		return err
	})
	if err != nil {
		return fail(err)
	}
	return &initProcess{proc: proc, sync: parentEnd, fds: fds}, nil
}

// forkSpec is what forkExec starts: the sealed init, in new namespaces,
// with the descriptors to pass under their own numbers.
type forkSpec struct {
	exe        *os.File // exec'd by descriptor
	argv, env  []string
	cloneFlags uintptr
	// uidMaps and gidMaps are written for a new user namespace through
	// proc, opened before the forking thread joined any namespace.
	uidMaps, gidMaps []specs.LinuxIDMapping
	proc             *procfs.Handle
	userns           *os.File // a user namespace the child joins, or nil
	setsid           bool
	preserved        int        // the caller's fds from 3 on, inherited as they are
	keep             []*os.File // made inheritable in the child only
}

// writeIDMaps sets the id mappings of the child's new user namespace, which
// it waits for before it becomes the namespace's root.
func writeIDMaps(f *forkSpec, pid int) error {
	for _, m := range []struct {
		file string
		data []byte
	}{{"uid_map", idMapFile(f.uidMaps)}, {"gid_map", idMapFile(f.gidMaps)}} {
		if err := writePidFile(f.proc, pid, m.file, m.data); err != nil {
			return fmt.Errorf("write %s of process %d: %w", m.file, pid, err)
		}
	}
	return nil
}

func writePidFile(proc *procfs.Handle, pid int, name string, data []byte) error {
	file, err := openPidFile(proc, pid, name, unix.O_WRONLY)
	if err != nil {
		return err
	}
	defer file.Close()
	_, err = file.Write(data)
	return err
}

// openPidFile opens /proc/<pid>/<name> through the procfs handle.
func openPidFile(proc *procfs.Handle, pid int, name string, flags int) (*os.File, error) {
	h, err := proc.OpenPid(pid, name)
	if err != nil {
		return nil, fmt.Errorf("open %s of process %d: %w", name, pid, err)
	}
	defer h.Close()
	f, err := pathrs.Reopen(h, flags)
	if err != nil {
		return nil, fmt.Errorf("open %s of process %d: %w", name, pid, err)
	}
	return f, nil
}

// checkPreservedFds makes sure the descriptors 3..3+n-1 are the caller's:
// open, and inherited, so not close-on-exec, as every descriptor the
// runtime (and the Go runtime, which keeps cgroup files open) opens itself
// is. A number the caller did not pass would else hand the container
// whatever the runtime happened to open under it.
func checkPreservedFds(n int) error {
	for fd := 3; fd < 3+n; fd++ {
		flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
		if err != nil {
			return fmt.Errorf("unable to stat preserved-fd %d (of %d): %w", fd-3, n, err)
		}
		if flags&unix.FD_CLOEXEC != 0 {
			return fmt.Errorf("preserved-fd %d (of %d) was not passed by the caller: fd %d is the runtime's own", fd-3, n, fd)
		}
	}
	return nil
}

// idMapFile is the content of a uid_map or gid_map file.
func idMapFile(maps []specs.LinuxIDMapping) []byte {
	var b []byte
	for _, m := range maps {
		b = fmt.Appendf(b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
	}
	return b
}

// handshake sends the bootstrap and waits for the process to be ready,
// running runtimeHooks when the init asks for them, answering its requests
// for mount sources with mountSource and sending the listener of its
// seccomp profile to agent.
func (p *initProcess) handshake(b initproc.Bootstrap, runtimeHooks func() error, mountSource func(int) (*os.File, error), agent *seccompAgent) error {
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
			return fmt.Errorf("unable to start container process: init exited before it was ready (%w)", werr)
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
		case r.MountSource != nil:
			src, err := (*os.File)(nil), errNoMountSources
			if mountSource != nil {
				src, err = mountSource(*r.MountSource)
			}
			serr := initproc.SendMountSource(p.sync, src, err)
			if src != nil {
				src.Close()
			}
			if serr != nil {
				return serr
			}
		case r.SeccompFd != nil:
			if err := takeSeccompListener(p.sync, agent, p.proc.Pid, *r.SeccompFd); err != nil {
				return err
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
