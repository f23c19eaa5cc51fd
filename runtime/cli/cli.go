// Package cli is hostnet-runc's command line: runc's commands, flags and
// output shapes, so go-runc, containerd's shims and people can drive it as
// they drive runc.
package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/hostnet-dev/hostnet/runtime/container"
	"github.com/hostnet-dev/hostnet/runtime/logging"
)

// Version is set at build time.
var Version = "dev"

// SpecVersion is the newest runtime-spec version implemented.
const SpecVersion = "1.3.0"

// DefaultRoot is where container state lives without --root.
const DefaultRoot = "/run/hostnet-runc"

// globals are the flags before the command.
type globals struct {
	root string
	// rootSet tells an explicit --root, which `list` requires to exist.
	rootSet       bool
	log           *logging.Logger
	systemdCgroup bool
}

// command is one subcommand, with the texts of its --help.
type command struct {
	name        string
	summary     string
	args        string // what follows the options in USAGE
	description string
	run         func(g *globals, args []string) error
}

var commands map[string]*command

func init() {
	commands = map[string]*command{}
	for _, c := range []*command{
		{name: "checkpoint", summary: "checkpoint a running container (not supported)", args: "<container-id>", run: notSupported("checkpoint")},
		{name: "create", summary: "create a container", args: "<container-id>", run: runCreate,
			description: "The create command creates an instance of a container for a bundle: a directory\n   with a specification file named \"config.json\" and a root filesystem."},
		{name: "delete", summary: "delete any resources held by the container often used with detached container", args: "<container-id>", run: runDelete},
		{name: "events", summary: "display container events such as OOM notifications, cpu, memory, and IO usage statistics", args: "<container-id>", run: runEvents},
		{name: "exec", summary: "execute new process inside the container", args: "<container-id> <command> [command options]  || -p process.json <container-id>", run: runExec},
		{name: "features", summary: "show the enabled features", run: runFeatures},
		{name: "kill", summary: "kill sends the specified signal (default: SIGTERM) to the container's init process", args: "<container-id> [signal]", run: runKill},
		{name: "list", summary: "lists containers started by hostnet-runc with the given root", run: runList},
		{name: "pause", summary: "pause suspends all processes inside the container", args: "<container-id>", run: runPause},
		{name: "ps", summary: "ps displays the processes running inside a container", args: "<container-id> [ps options]", run: runPs},
		{name: "restore", summary: "restore a container from a previous checkpoint (not supported)", args: "<container-id>", run: notSupported("restore")},
		{name: "resume", summary: "resumes all processes that have been previously paused", args: "<container-id>", run: runResume},
		{name: "run", summary: "create and run a container", args: "<container-id>", run: runRun},
		{name: "spec", summary: "create a new specification file", run: runSpec},
		{name: "start", summary: "executes the user defined process in a created container", args: "<container-id>", run: runStart},
		{name: "state", summary: "output the state of a container", args: "<container-id>", run: runState},
		{name: "update", summary: "update container resource constraints", args: "<container-id>", run: runUpdate},
		{name: "help", summary: "shows a list of commands or help for one command", args: "[command]", run: runHelp},
	} {
		commands[c.name] = c
	}
	commands["h"] = commands["help"]
}

// Main runs the command line and returns the exit status.
func Main(args []string) int {
	f := newFlags("")
	f.inOrder = true
	g := &globals{root: DefaultRoot}
	var logPath, logFormat, rootless, criu string
	var debug, version bool
	logFormat = "text"
	f.boolVar(&debug, "debug", "enable debug logging")
	f.stringVar(&logPath, "log", "set the log file to write hostnet-runc logs to (default is '/dev/stderr')")
	f.stringVar(&logFormat, "log-format", "set the log format ('text' (default), or 'json')")
	f.stringVar(&g.root, "root", "root directory for storage of container state (this should be located in tmpfs)")
	f.boolVar(&g.systemdCgroup, "systemd-cgroup", "enable systemd cgroup support, expects cgroupsPath to be of form \"slice:prefix:name\" for e.g. \"system.slice:runc:434234\"")
	// runc's --rootless only relaxes cgroup permission errors, which
	// hostnet-runc (run as root) does not have; --criu is for
	// checkpoint/restore, which is not supported. Both are accepted for
	// callers that always pass them.
	f.stringVar(&rootless, "rootless", "")
	f.stringVar(&criu, "criu", "")
	f.boolVar(&version, "version, v", "print the version")
	globalDocs = f.docs
	pos, err := f.parse(args, atLeast(0))
	if errors.Is(err, errHelpShown) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "Incorrect Usage. %v\n\n%s", err, usage())
		return 1
	}
	if version || (len(pos) > 0 && pos[0] == "version") {
		fmt.Printf("hostnet-runc version %s\nspec: %s\ngo: %s\n", Version, SpecVersion, runtime.Version())
		return 0
	}
	g.rootSet = f.isSet("root")
	if g.rootSet {
		if g.root, err = filepath.Abs(g.root); err == nil && g.root == "/" {
			err = errors.New("option --root argument should not be set to /")
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
			return 1
		}
	}
	g.log, err = logging.Open(logPath, logFormat, debug)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
		return 1
	}
	if len(pos) == 0 {
		fmt.Print(usage())
		return 0
	}
	cmd, ok := commands[pos[0]]
	if !ok {
		report(g.log, fmt.Errorf("No help topic for '%s'", pos[0])) //nolint:staticcheck // runc's (urfave/cli's) message verbatim
		return 3
	}
	g.log.Debugf("hostnet-runc %s: %s %q", Version, cmd.name, pos[1:])
	return exitStatus(g.log, cmd.run(g, pos[1:]))
}

// exitStatus reports err as runc does and returns the exit status.
func exitStatus(log *logging.Logger, err error) int {
	var (
		ex     exitError
		status *statusError
		usage  *usageError
		hw     *container.HookWarning
	)
	switch {
	case err == nil, errors.Is(err, errHelpShown):
		return 0
	case errors.As(err, &ex):
		return int(ex)
	case errors.As(err, &hw):
		log.Warnf("%s", hw)
		return 0
	case errors.As(err, &usage):
		// Help on stderr, unlike runc's stdout: stdout is what callers
		// parse (state, list, ps, features).
		fmt.Fprint(os.Stderr, "Incorrect Usage.\n\n")
		usage.flags.printHelp(os.Stderr)
		report(log, err)
		return 1
	case errors.As(err, &status):
		report(log, err)
		return status.code
	}
	report(log, err)
	return 1
}

// report writes the error as runc does: to the log, which is what
// containerd's shim reads, and to stderr for a person at a terminal.
func report(log *logging.Logger, err error) {
	log.Errorf("%s", err)
	if !log.ToStderr() {
		fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
	}
}

// exitError carries a foreground process's exit status out of Main.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("container exited with status %d", int(e)) }

// statusError is a failure with an exit status other than 1: exec's
// runtime errors exit 255, as runc's do, so that they cannot be taken for
// the process's own exit status 1.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// globalDocs are the global flags, for the main help.
var globalDocs []flagDoc

func usage() string {
	names := make([]string, 0, len(commands))
	width := 0
	for n, c := range commands {
		if n == c.name {
			names = append(names, n)
			width = max(width, len(n))
		}
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("NAME:\n   hostnet-runc - Open Container Initiative runtime, runc-compatible, of hostnet\n\n" +
		"USAGE:\n   hostnet-runc [global options] command [command options] [arguments...]\n\n" +
		"VERSION:\n   " + Version + "\n\nCOMMANDS:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "   %-*s  %s\n", width, n, commands[n].summary)
	}
	b.WriteString("\nGLOBAL OPTIONS:\n")
	writeFlagDocs(&b, globalDocs)
	return b.String()
}

// runHelp prints the main help, or a command's.
func runHelp(g *globals, args []string) error {
	if len(args) == 0 {
		fmt.Print(usage())
		return nil
	}
	c, ok := commands[args[0]]
	if !ok || c.name == "help" {
		return fmt.Errorf("No help topic for '%s'", args[0]) //nolint:staticcheck // runc's (urfave/cli's) message verbatim
	}
	// The command's own --help, which defines its flags first.
	return c.run(g, []string{"--help"})
}

func notSupported(name string) func(*globals, []string) error {
	return func(_ *globals, args []string) error {
		if _, err := newFlags(name).parse(args, atLeast(0)); err != nil {
			return err
		}
		return errors.New("checkpoint/restore is not supported by hostnet-runc")
	}
}
