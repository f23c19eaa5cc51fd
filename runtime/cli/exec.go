package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

func runExec(g *globals, args []string) error {
	fs := newFlags("exec")
	o := container.ExecOpts{Warnf: g.log.Warnf}
	processFile := fs.String("process", "", "JSON file with the process (a runtime-spec process)")
	fs.StringVar(processFile, "p", "", "")
	detach := fs.Bool("detach", false, "do not wait for the process")
	fs.BoolVar(detach, "d", false, "")
	tty := fs.Bool("tty", false, "allocate a pseudo-TTY")
	fs.BoolVar(tty, "t", false, "")
	cwd := fs.String("cwd", "", "working directory")
	user := fs.String("user", "", "uid[:gid]")
	fs.StringVar(user, "u", "", "")
	var env, caps stringList
	fs.Var(&env, "env", "environment variable KEY=VALUE")
	fs.Var(&env, "e", "")
	fs.Var(&caps, "cap", "additional capability")
	noNewPrivs := fs.Bool("no-new-privs", false, "set no_new_privs")
	fs.StringVar(&o.PidFile, "pid-file", "", "file to write the process's pid to")
	fs.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass this many extra fds (from 3)")
	processLabel := fs.String("process-label", "", "set the SELinux label of the process")
	apparmor := fs.String("apparmor", "", "set the AppArmor profile of the process")
	id, err := parseID(fs, args, "exec")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	if *processFile != "" {
		data, err := os.ReadFile(*processFile)
		if err != nil {
			return fmt.Errorf("read process file: %w", err)
		}
		o.Process = &specs.Process{}
		if err := json.Unmarshal(data, o.Process); err != nil {
			return fmt.Errorf("parse process file %s: %w", *processFile, err)
		}
	} else {
		if fs.NArg() < 2 {
			return errors.New("exec: a command or --process is required")
		}
		// Defaults come from the container's own process.
		s, err := container.LoadSpec(c.Bundle)
		if err != nil {
			return err
		}
		o.Process = s.Process
		o.Process.Args = fs.Args()[1:]
		o.Process.Terminal = *tty
		o.Process.Env = append(o.Process.Env, env...)
		if *cwd != "" {
			o.Process.Cwd = *cwd
		}
		if *user != "" {
			if err := parseUser(*user, &o.Process.User); err != nil {
				return err
			}
		}
		if *noNewPrivs {
			o.Process.NoNewPrivileges = true
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
	if *apparmor != "" {
		o.Process.ApparmorProfile = *apparmor
	}
	if *processLabel != "" {
		o.Process.SelinuxLabel = *processLabel
	}
	if len(o.Process.Args) == 0 {
		return errors.New("exec: process args must not be empty")
	}
	// As runc: only a detached process with a terminal sends it over the
	// console socket. Connecting to it without one would leave the caller
	// waiting on the socket for a terminal that never comes.
	switch {
	case *detach && o.Process.Terminal && o.ConsoleSocket == "":
		return errors.New("cannot allocate tty if runc will detach without setting console socket")
	case (!*detach || !o.Process.Terminal) && o.ConsoleSocket != "":
		return errors.New("cannot use console socket if runc will not detach or allocate tty")
	}
	proc, err := c.Exec(o)
	if err != nil {
		return err
	}
	if *detach {
		return proc.Release()
	}
	var ws unix.WaitStatus
	for {
		_, err := unix.Wait4(proc.Pid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if ws.Signaled() {
		return exitError(128 + int(ws.Signal()))
	}
	if code := ws.ExitStatus(); code != 0 {
		return exitError(code)
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
