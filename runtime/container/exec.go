package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

// ExecOpts are the flags of `exec`.
type ExecOpts struct {
	Process       *specs.Process
	PidFile       string
	ConsoleSocket string
	// Console, instead of ConsoleSocket, is a connected socket to send the
	// pty master over: the foreground exec's own.
	Console     *os.File
	PidfdSocket string
	PreserveFds int
	// SubCgroups places the process in sub-cgroups of the container's
	// (--cgroup): by v1 controller, or under "" for all of them.
	SubCgroups map[string]string
	// IgnorePaused allows an exec into a paused container, which then
	// starts once the container resumes.
	IgnorePaused bool
	// Warnf, when set, receives what runc logs as warnings, Debugf what
	// it logs at debug level.
	Warnf, Debugf func(format string, args ...any)
}

// execJoinOrder enters the mount namespace last: after it, paths resolve in
// the container, and the /proc/<pid>/ns files are still reachable before.
var execJoinOrder = []specs.LinuxNamespaceType{
	specs.IPCNamespace, specs.UTSNamespace, specs.NetworkNamespace,
	specs.PIDNamespace, specs.CgroupNamespace, specs.MountNamespace,
}

var nsFile = map[specs.LinuxNamespaceType]string{
	specs.IPCNamespace: "ipc", specs.UTSNamespace: "uts", specs.NetworkNamespace: "net",
	specs.PIDNamespace: "pid", specs.CgroupNamespace: "cgroup", specs.MountNamespace: "mnt",
	specs.UserNamespace: "user",
}

// Exec starts an additional process in the container, in its namespaces
// and cgroup. It returns the process once it is running. As with runc, a
// created container, whose init waits for start, takes execs too.
func (c *Container) Exec(o ExecOpts) (*os.Process, error) {
	if err := ValidateProcess(o.Process); err != nil {
		return nil, err
	}
	// Read once: each Status reads /proc, the exec fifo and the cgroup.
	st := c.Status()
	switch {
	case st == Stopped:
		return nil, errors.New("cannot exec in a stopped container")
	case st == Paused && !o.IgnorePaused:
		return nil, errors.New("cannot exec in a paused container (use --ignore-paused to override)")
	}
	warnUnknownCapabilities(o.Warnf, o.Process.Capabilities)
	userns := ""
	if differs, err := c.nsDiffers(specs.UserNamespace); err != nil {
		return nil, err
	} else if differs {
		userns = c.nsPath(specs.UserNamespace)
	}
	var joins []specs.LinuxNamespace
	for _, t := range execJoinOrder {
		differs, err := c.nsDiffers(t)
		if err != nil {
			return nil, err
		}
		if differs {
			joins = append(joins, specs.LinuxNamespace{Type: t, Path: c.nsPath(t)})
		}
	}
	cg, err := c.LoadCgroup()
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.ID, err)
	}
	p, err := spawn(spawnOpts{
		consoleSocket: o.ConsoleSocket,
		consoleConn:   o.Console,
		preserveFds:   o.PreserveFds,
		// A session of its own, with or without a terminal, as runc's:
		// a foreground exec forwards the caller's signals itself, and
		// the terminal's would else reach the process twice.
		setsid: true,
		joins:  joins,
		userns: userns,
		root:   filepath.Dir(c.Dir),
		debugf: o.Debugf,
	})
	if err != nil {
		return nil, err
	}
	defer p.sync.Close()
	pid := p.proc.Pid
	if o.SubCgroups != nil {
		err = c.Cgroup.AddSub(pid, o.SubCgroups)
	} else {
		err = cg.Add(pid)
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("add process %d to cgroup %s: %w", pid, c.Cgroup, err)
	}
	resetCPUAffinity(o.Warnf, pid)
	if o.PidfdSocket != "" {
		if err := sendPidfd(o.PidfdSocket, pid, "setns"); err != nil {
			p.kill()
			return nil, err
		}
	}
	if err := p.setOOMScoreAdj(o.Process.OOMScoreAdj); err != nil {
		p.kill()
		return nil, err
	}
	spec := &specs.Spec{Process: o.Process, Linux: &specs.Linux{Seccomp: c.Seccomp}}
	agent := newSeccompAgent(c.Seccomp, *c.hookState(specs.ContainerState(st)))
	if err := p.handshake(initproc.Bootstrap{Exec: true, Spec: spec}, nil, nil, agent); err != nil {
		p.kill()
		return nil, err
	}
	if o.PidFile != "" {
		if err := writeFileAtomic(o.PidFile, []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return nil, fmt.Errorf("write pid file %s: %w", o.PidFile, err)
		}
	}
	return p.proc, nil
}

func (c *Container) nsPath(t specs.LinuxNamespaceType) string {
	return "/proc/" + strconv.Itoa(c.InitPid) + "/ns/" + nsFile[t]
}

// nsDiffers compares the init's namespace of type t with our own.
func (c *Container) nsDiffers(t specs.LinuxNamespaceType) (bool, error) {
	var theirs, ours unix.Stat_t
	if err := unix.Stat(c.nsPath(t), &theirs); err != nil {
		return false, fmt.Errorf("inspect %s namespace of init %d: %w", t, c.InitPid, err)
	}
	if err := unix.Stat("/proc/self/ns/"+nsFile[t], &ours); err != nil { // procfs-literal: the runtime's own, before it joins the container
		return false, fmt.Errorf("inspect own %s namespace: %w", t, err)
	}
	return theirs.Ino != ours.Ino || theirs.Dev != ours.Dev, nil
}
