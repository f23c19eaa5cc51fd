package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/container"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runExec starts a process in a container. Its runtime errors exit 255, as
// runc's do: 1 could be the process's own status.
func runExec(g *globals, args []string) error {
	f := newFlags("exec")
	// As runc: the command after the id is not parsed (ls -l stays ls -l).
	f.inOrder = true
	o := container.ExecOpts{Warnf: g.log.Warnf, Debugf: g.log.Debugf}
	var processFile, cwd, user, processLabel, apparmor string
	var detach, terminal, noNewPrivs, ignorePaused bool
	var env, caps, gids, cgroupArgs stringList
	f.stringVar(&o.ConsoleSocket, "console-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	f.stringVar(&o.PidfdSocket, "pidfd-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing the exec process")
	f.stringVar(&cwd, "cwd", "current working directory in the container")
	f.listVar(&env, "env, e", "set environment variables")
	f.boolVar(&terminal, "tty, t", "allocate a pseudo-TTY")
	f.stringVar(&user, "user, u", "UID (format: <uid>[:<gid>])")
	f.listVar(&gids, "additional-gids, g", "additional gids")
	f.stringVar(&processFile, "process, p", "path to the process.json")
	f.boolVar(&detach, "detach, d", "detach from the container's process")
	f.stringVar(&o.PidFile, "pid-file", "specify the file to write the process id to")
	f.stringVar(&processLabel, "process-label", "set the asm process label for the process commonly used with selinux")
	f.stringVar(&apparmor, "apparmor", "set the apparmor profile for the process")
	f.boolVar(&noNewPrivs, "no-new-privs", "set the no new privileges value for the process")
	f.listVar(&caps, "cap, c", "add a capability to the bounding set for the process")
	f.intVar(&o.PreserveFds, "preserve-fds", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
	f.listVar(&cgroupArgs, "cgroup", "run the process in an (existing) sub-cgroup(s). Format is [<controller>:]<cgroup>.")
	f.boolVar(&ignorePaused, "ignore-paused", "allow exec in a paused container")
	pos, err := f.parse(args, atLeast(1))
	if err != nil {
		return err
	}
	fail := func(err error) error { return &statusError{255, fmt.Errorf("exec failed: %w", err)} }
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return fail(err)
	}
	if processFile != "" {
		data, err := os.ReadFile(processFile)
		if err != nil {
			return fail(err)
		}
		o.Process = &specs.Process{}
		if err := json.Unmarshal(data, o.Process); err != nil {
			return fail(fmt.Errorf("parse process file %s: %w", processFile, err))
		}
	} else {
		if len(pos) < 2 {
			return fail(errors.New("exec args cannot be empty"))
		}
		// Defaults come from the container's own process.
		s, err := container.LoadSpec(c.Bundle)
		if err != nil {
			return fail(err)
		}
		o.Process = s.Process
		o.Process.Args = pos[1:]
		o.Process.Terminal = terminal
		o.Process.Env = append(o.Process.Env, env...)
		if cwd != "" {
			o.Process.Cwd = cwd
		}
		if user != "" {
			if err := parseUser(user, &o.Process.User); err != nil {
				return fail(err)
			}
		}
		for _, s := range gids {
			gid, err := strconv.ParseInt(s, 10, 64)
			if err != nil {
				return fail(fmt.Errorf("invalid --additional-gids %q: %w", s, err))
			}
			if gid < 0 || gid > math.MaxUint32 {
				return fail(fmt.Errorf("additional-gids must be a positive number %d", gid))
			}
			o.Process.User.AdditionalGids = append(o.Process.User.AdditionalGids, uint32(gid))
		}
		if f.isSet("no-new-privs") {
			o.Process.NoNewPrivileges = noNewPrivs
		}
		if len(caps) > 0 && o.Process.Capabilities != nil {
			pc := o.Process.Capabilities
			pc.Bounding = append(pc.Bounding, caps...)
			pc.Effective = append(pc.Effective, caps...)
			pc.Permitted = append(pc.Permitted, caps...)
			// As runc: ambient needs inheritable, which --cap does not
			// add, so only when the spec already has inheritable ones.
			if pc.Inheritable != nil {
				pc.Ambient = append(pc.Ambient, caps...)
			}
		}
	}
	// Applied over a --process file too (runc drops them there): they can
	// only confine the process more, and a flag that does nothing is worse
	// than one that fails. A host without the LSM refuses them at exec.
	if apparmor != "" {
		o.Process.ApparmorProfile = apparmor
	}
	if processLabel != "" {
		o.Process.SelinuxLabel = processLabel
	}
	if o.SubCgroups, err = cgroups.ParseSub(cgroupArgs); err != nil {
		return fail(err)
	}
	o.IgnorePaused = ignorePaused
	if err := checkTerminal(o.ConsoleSocket, detach, o.Process.Terminal); err != nil {
		return fail(err)
	}
	var fg *foreground
	var t *tty
	if !detach {
		fg = newForeground(g.log, false)
		defer fg.stop()
		if o.Process.Terminal {
			if t, err = newTTY(o.Process); err != nil {
				return fail(err)
			}
			defer t.close()
			o.Console = t.conn
		}
	}
	proc, err := c.Exec(o)
	if err != nil {
		return fail(err)
	}
	if detach {
		return proc.Release()
	}
	if t != nil {
		if err := t.attach(); err != nil {
			_ = proc.Kill()
			_, _ = proc.Wait()
			return fail(err)
		}
	}
	status := fg.wait(proc.Pid, t)
	t.close()
	if status != 0 {
		return exitError(status)
	}
	return nil
}

func parseUser(s string, u *specs.User) error {
	uidStr, gidStr, hasGid := strings.Cut(s, ":")
	uid, err := strconv.ParseUint(uidStr, 10, 32)
	if err != nil {
		return fmt.Errorf("invalid --user %q: want uid[:gid]", s)
	}
	u.UID = uint32(uid)
	if hasGid {
		gid, err := strconv.ParseUint(gidStr, 10, 32)
		if err != nil {
			return fmt.Errorf("invalid --user %q: want uid[:gid]", s)
		}
		u.GID = uint32(gid)
	}
	return nil
}
