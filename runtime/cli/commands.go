package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

func createFlags(name string, o *container.CreateOpts, detach *bool) *flag.FlagSet {
	fs := newFlags(name)
	fs.StringVar(&o.Bundle, "bundle", ".", "path to the bundle")
	fs.StringVar(&o.Bundle, "b", ".", "path to the bundle")
	fs.StringVar(&o.PidFile, "pid-file", "", "file to write the init's pid to")
	fs.StringVar(&o.ConsoleSocket, "console-socket", "", "unix socket to send the pty master to")
	fs.BoolVar(&o.NoPivot, "no-pivot", false, "use MS_MOVE+chroot instead of pivot_root")
	fs.IntVar(&o.PreserveFds, "preserve-fds", 0, "pass this many extra fds (from 3) to the process")
	fs.BoolVar(&o.NoNewKeyring, "no-new-keyring", false, "keep the caller's session keyring")
	// create always detaches; run waits unless told not to.
	fs.BoolVar(detach, "detach", false, "do not wait for the container")
	fs.BoolVar(detach, "d", false, "do not wait for the container")
	return fs
}

func runCreate(g *globals, args []string) error {
	o := container.CreateOpts{SystemdCgroup: g.systemdCgroup, Warnf: g.log.Warnf}
	fs := createFlags("create", &o, new(bool))
	id, err := parseID(fs, args, "create")
	if err != nil {
		return err
	}
	return container.Create(g.root, id, o)
}

// runRun is create + start; in the foreground it waits for the container
// and exits with its status, then deletes it.
func runRun(g *globals, args []string) error {
	o := container.CreateOpts{SystemdCgroup: g.systemdCgroup, Warnf: g.log.Warnf}
	detach := new(bool)
	fs := createFlags("run", &o, detach)
	id, err := parseID(fs, args, "run")
	if err != nil {
		return err
	}
	if err := container.Create(g.root, id, o); err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	var hookWarning *container.HookWarning
	if err := c.Start(); err != nil && !errors.As(err, &hookWarning) {
		c.Delete(true)
		return err
	} else if err != nil {
		g.log.Warnf("%s", err)
	}
	if *detach {
		return nil
	}
	var ws unix.WaitStatus
	for {
		// The init is our own child here: create forked it.
		_, err := unix.Wait4(c.InitPid, &ws, 0, nil)
		if !errors.Is(err, unix.EINTR) {
			break
		}
	}
	if err := c.Delete(true); err != nil && !errors.As(err, &hookWarning) {
		return err
	} else if err != nil {
		g.log.Warnf("%s", err)
	}
	status := ws.ExitStatus()
	if ws.Signaled() {
		status = 128 + int(ws.Signal())
	}
	return exitError(status)
}

func runStart(g *globals, args []string) error {
	id, err := parseID(newFlags("start"), args, "start")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	return c.Start()
}

func runState(g *globals, args []string) error {
	id, err := parseID(newFlags("state"), args, "state")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	return printJSON(c.OCIState())
}

func runList(g *globals, args []string) error {
	fs := newFlags("list")
	format := fs.String("format", "table", "table or json")
	fs.StringVar(format, "f", "table", "table or json")
	quiet := fs.Bool("quiet", false, "print only ids")
	fs.BoolVar(quiet, "q", false, "print only ids")
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("list: %w", err)
	}
	cs, err := container.List(g.root)
	if err != nil {
		return err
	}
	states := make([]container.OCIState, 0, len(cs))
	for _, c := range cs {
		states = append(states, c.OCIState())
	}
	switch {
	case *quiet:
		for _, s := range states {
			fmt.Println(s.ID)
		}
	case *format == "json":
		return printJSON(states)
	case *format == "table":
		w := tabwriter.NewWriter(os.Stdout, 12, 1, 3, ' ', 0)
		fmt.Fprint(w, "ID\tPID\tSTATUS\tBUNDLE\tCREATED\tOWNER\n")
		for _, s := range states {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.Pid, s.Status, s.Bundle, s.Created.Format(time.RFC3339Nano), s.Owner)
		}
		return w.Flush()
	default:
		return fmt.Errorf("invalid format %q: must be table or json", *format)
	}
	return nil
}

func runKill(g *globals, args []string) error {
	fs := newFlags("kill")
	all := fs.Bool("all", false, "signal every process in the container")
	fs.BoolVar(all, "a", false, "signal every process in the container")
	id, err := parseID(fs, args, "kill")
	if err != nil {
		return err
	}
	sig := unix.SIGTERM
	if fs.NArg() > 1 {
		if sig, err = ParseSignal(fs.Arg(1)); err != nil {
			return err
		}
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	return c.Signal(sig, *all)
}

func runDelete(g *globals, args []string) error {
	fs := newFlags("delete")
	force := fs.Bool("force", false, "kill the container first if it is running")
	fs.BoolVar(force, "f", false, "kill the container first if it is running")
	id, err := parseID(fs, args, "delete")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if errors.Is(err, container.ErrNotExist) {
		// A create that died before writing state leaves a bare directory.
		if rerr := container.RemoveStale(g.root, id); rerr != nil {
			return rerr
		}
		if *force {
			return nil
		}
	}
	if err != nil {
		return err
	}
	return c.Delete(*force)
}

func runPs(g *globals, args []string) error {
	fs := newFlags("ps")
	format := fs.String("format", "table", "table or json")
	fs.StringVar(format, "f", "table", "table or json")
	id, err := parseID(fs, args, "ps")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	pids, err := c.Pids()
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		return printJSON(pids)
	case "table":
		fmt.Println("PID")
		for _, p := range pids {
			fmt.Println(p)
		}
		return nil
	default:
		return fmt.Errorf("invalid format %q: must be table or json", *format)
	}
}

func runPause(g *globals, args []string) error {
	id, err := parseID(newFlags("pause"), args, "pause")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	return c.Pause()
}

func runResume(g *globals, args []string) error {
	id, err := parseID(newFlags("resume"), args, "resume")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	return c.Resume()
}

// ParseSignal accepts "KILL", "SIGKILL" or "9".
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
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
	return 0, fmt.Errorf("invalid signal %q", s)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
