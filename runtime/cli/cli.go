// Package cli is hostnet-runc's command line: runc's commands, flags and
// output shapes, so go-runc, containerd's shims and people can drive it as
// they drive runc.
package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
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
	root          string
	log           *logging.Logger
	systemdCgroup bool
}

type command struct {
	usage string
	run   func(g *globals, args []string) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"create":     {"create [options] <container-id>", runCreate},
		"run":        {"run [options] <container-id>", runRun},
		"start":      {"start <container-id>", runStart},
		"state":      {"state <container-id>", runState},
		"list":       {"list [--format table|json] [-q]", runList},
		"kill":       {"kill [--all] <container-id> [signal]", runKill},
		"delete":     {"delete [--force] <container-id>", runDelete},
		"ps":         {"ps [--format table|json] <container-id>", runPs},
		"pause":      {"pause <container-id>", runPause},
		"resume":     {"resume <container-id>", runResume},
		"features":   {"features", runFeatures},
		"exec":       {"exec [options] <container-id> <command> [args...]", runExec},
		"update":     {"update [options] <container-id>", runUpdate},
		"events":     {"events [--stats] [--interval D] <container-id>", runEvents},
		"spec":       {"spec [--bundle DIR]", runSpec},
		"checkpoint": {"checkpoint <container-id>", notSupported},
		"restore":    {"restore <container-id>", notSupported},
	}
}

// Main runs the command line and returns the exit status.
func Main(args []string) int {
	fs := flag.NewFlagSet("hostnet-runc", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	root := fs.String("root", DefaultRoot, "root directory for container state")
	logPath := fs.String("log", "", "log file (default stderr)")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	debug := fs.Bool("debug", false, "log debug messages")
	systemd := fs.Bool("systemd-cgroup", false, "use the systemd cgroup driver")
	version := fs.Bool("version", false, "print the version")
	fs.BoolVar(version, "v", false, "print the version")
	fs.String("criu", "", "ignored: checkpoint/restore is not supported")
	fs.Bool("rootless", false, "ignored")
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
		return 1
	}
	if *version || fs.Arg(0) == "version" {
		fmt.Printf("hostnet-runc version %s\nspec: %s\n", Version, SpecVersion)
		return 0
	}
	log, err := logging.Open(*logPath, *logFormat, *debug)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
		return 1
	}
	name := fs.Arg(0)
	cmd, ok := commands[name]
	if !ok {
		if name == "" {
			fmt.Fprint(os.Stderr, usage())
		} else {
			report(log, fmt.Errorf("no such command %q\n%s", name, usage()))
		}
		return 1
	}
	g := &globals{root: *root, log: log, systemdCgroup: *systemd}
	if err := cmd.run(g, fs.Args()[1:]); err != nil {
		var ex exitError
		if errors.As(err, &ex) {
			return int(ex)
		}
		var hw *container.HookWarning
		if errors.As(err, &hw) {
			log.Warnf("%s", hw)
			return 0
		}
		report(log, err)
		return 1
	}
	return 0
}

// report writes the error as runc does: to the log, which is what
// containerd's shim reads, and to stderr for a person at a terminal.
func report(log *logging.Logger, err error) {
	log.Errorf("%s", err)
	if !log.ToStderr() {
		fmt.Fprintf(os.Stderr, "hostnet-runc: %v\n", err)
	}
}

// exitError carries `run`'s container exit status out of Main.
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("container exited with status %d", int(e)) }

func usage() string {
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("usage: hostnet-runc [--root DIR] [--log FILE] [--log-format text|json] <command>\n\ncommands:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "  %s\n", commands[n].usage)
	}
	return b.String()
}

func notSupported(*globals, []string) error {
	return errors.New("checkpoint/restore is not supported by hostnet-runc")
}

// newFlags returns a flag set for a subcommand.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// parseID parses a subcommand's flags and returns its container id.
func parseID(fs *flag.FlagSet, args []string, name string) (string, error) {
	if err := fs.Parse(args); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	if fs.NArg() < 1 {
		return "", fmt.Errorf("%s: container id cannot be empty", name)
	}
	return fs.Arg(0), nil
}
