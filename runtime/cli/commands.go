package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// createOptions are the flags create and run share.
func createFlags(f *flagSet, o *container.CreateOpts) {
	f.stringVar(&o.Bundle, "bundle, b", "path to the root of the bundle directory, defaults to the current directory")
	f.stringVar(&o.ConsoleSocket, "console-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing the master end of the console's pseudoterminal")
	f.stringVar(&o.PidfdSocket, "pidfd-socket", "path to an AF_UNIX socket which will receive a file descriptor referencing the init process")
	f.stringVar(&o.PidFile, "pid-file", "specify the file to write the process id to")
	f.boolVar(&o.NoPivot, "no-pivot", "do not use pivot root to jail process inside rootfs.  This should be used whenever the rootfs is on top of a ramdisk")
	f.boolVar(&o.NoNewKeyring, "no-new-keyring", "do not create a new session keyring for the container.  This will cause the container to inherit the calling processes session key")
	f.intVar(&o.PreserveFds, "preserve-fds", "Pass N additional file descriptors to the container (stdio + $LISTEN_FDS + N in total)")
}

func newCreateOpts(g *globals) container.CreateOpts {
	return container.CreateOpts{Bundle: ".", SystemdCgroup: g.systemdCgroup, Warnf: g.log.Warnf, Debugf: g.log.Debugf}
}

func runCreate(g *globals, args []string) error {
	o := newCreateOpts(g)
	f := newFlags("create")
	createFlags(f, &o)
	// Not a runc flag (create always detaches), accepted as before.
	f.boolVar(new(bool), "detach, d", "")
	pos, err := f.parse(args, exactly(1))
	if err != nil {
		return err
	}
	if o.Spec, err = loadBundleSpec(o.Bundle); err != nil {
		return err
	}
	// As runc: create detaches, so a terminal needs a socket to go to.
	if err := checkTerminal(o.ConsoleSocket, true, o.Spec.Process.Terminal); err != nil {
		return err
	}
	return container.Create(g.root, pos[0], o)
}

func runStart(g *globals, args []string) error {
	pos, err := newFlags("start").parse(args, exactly(1))
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return err
	}
	return c.Start(context.Background())
}

func runState(g *globals, args []string) error {
	pos, err := newFlags("state").parse(args, exactly(1))
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return err
	}
	return printJSON(c.OCIState())
}

func runList(g *globals, args []string) error {
	f := newFlags("list")
	format, quiet := "table", false
	f.stringVar(&format, "format, f", "select one of: table or json")
	f.boolVar(&quiet, "quiet, q", "display only container IDs")
	if _, err := f.parse(args, exactly(0)); err != nil {
		return err
	}
	// As runc: a missing root that was asked for is an error, the default
	// one only means no container has been created yet.
	cs, err := container.List(g.root, !g.rootSet)
	if err != nil {
		return err
	}
	var states []container.OCIState // null in JSON when empty, as runc's
	for _, c := range cs {
		states = append(states, c.OCIState())
	}
	switch {
	case quiet:
		for _, s := range states {
			fmt.Println(s.ID)
		}
	case format == "json":
		// One line, as runc prints it.
		return json.NewEncoder(os.Stdout).Encode(states)
	case format == "table":
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
		}
		return w.Flush()
	default:
		return errors.New("invalid format option")
	}
	return nil
}

func runKill(g *globals, args []string) error {
	f := newFlags("kill")
	all := false
	f.boolVar(&all, "all, a", "send the signal to every process in the container, not only its init")
	pos, err := f.parse(args, argCount{1, 2})
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if len(pos) > 1 {
		if sig, err = ParseSignal(pos[1]); err != nil {
			return err
		}
	}
	return container.Kill(g.root, pos[0], sig, all)
}

func runDelete(g *globals, args []string) error {
	f := newFlags("delete")
	force := false
	f.boolVar(&force, "force, f", "Forcibly deletes the container if it is still running (uses SIGKILL)")
	pos, err := f.parse(args, exactly(1))
	if err != nil {
		return err
	}
	return container.Delete(g.root, pos[0], force)
}

func runPause(g *globals, args []string) error {
	pos, err := newFlags("pause").parse(args, exactly(1))
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return err
	}
	return c.Pause()
}

func runResume(g *globals, args []string) error {
	pos, err := newFlags("resume").parse(args, exactly(1))
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, pos[0])
	if err != nil {
		return err
	}
	return c.Resume()
}

// ParseSignal accepts "KILL", "SIGKILL" or "9"; 0 checks that the init is
// alive, as kill(2) and runc do.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n > 64 {
			return 0, fmt.Errorf("invalid signal %q", s)
		}
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, fmt.Errorf("unknown signal %q", s)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
