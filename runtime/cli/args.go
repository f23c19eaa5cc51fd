package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// flagSet is one command's flags, parsed as runc's urfave/cli does it:
// Go's flag syntax (-f, --flag, --flag=value, --flag value), flags before
// or after the positional arguments, "--" ending them. Go's flag package
// alone stops at the first positional argument, which silently dropped every
// flag after the container id. An unknown flag anywhere is an error.
//
// urfave/cli itself is not used: it would add its help templates and
// reflection to every start of a binary that runs several times per
// container.
type flagSet struct {
	fs   *flag.FlagSet
	cmd  *command // nil for the global flags
	help bool
	// inOrder makes the first positional argument end the flags, as runc's
	// exec and ps do (SkipArgReorder): what follows is the command to run,
	// or ps's own options, flags included.
	inOrder bool
	// docs lists the flags in the order they were defined, for --help.
	docs []flagDoc
}

type flagDoc struct {
	names   []string
	value   bool // takes a value
	usage   string
	deflt   string
	visible bool
}

// newFlags returns the flag set of the command name.
func newFlags(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	f := &flagSet{fs: fs, cmd: commands[name]}
	f.boolVar(&f.help, "help, h", "show help")
	f.docs[0].visible = false // as in runc's help
	return f
}

// names splits "name, alias" as urfave/cli spells its flag names.
func names(spec string) []string {
	var out []string
	for _, n := range strings.Split(spec, ",") {
		out = append(out, strings.TrimSpace(n))
	}
	return out
}

func (f *flagSet) define(spec, usage, deflt string, value bool, def func(name string)) {
	ns := names(spec)
	for _, n := range ns {
		def(n)
	}
	f.docs = append(f.docs, flagDoc{names: ns, value: value, usage: usage, deflt: deflt, visible: usage != ""})
}

func (f *flagSet) boolVar(p *bool, spec, usage string) {
	f.define(spec, usage, "", false, func(n string) { f.fs.BoolVar(p, n, *p, usage) })
}

func (f *flagSet) stringVar(p *string, spec, usage string) {
	deflt := ""
	if *p != "" {
		deflt = strconv.Quote(*p)
	}
	f.define(spec, usage, deflt, true, func(n string) { f.fs.StringVar(p, n, *p, usage) })
}

func (f *flagSet) intVar(p *int, spec, usage string) {
	f.define(spec, usage, strconv.Itoa(*p), true, func(n string) { f.fs.IntVar(p, n, *p, usage) })
}

func (f *flagSet) durationVar(p *time.Duration, spec, usage string) {
	f.define(spec, usage, p.String(), true, func(n string) { f.fs.DurationVar(p, n, *p, usage) })
}

func (f *flagSet) listVar(p flag.Value, spec, usage string) {
	f.define(spec, usage, "", true, func(n string) { f.fs.Var(p, n, usage) })
}

// isSet reports whether the flag (any of its names) was given.
func (f *flagSet) isSet(spec string) bool {
	set := false
	ns := names(spec)
	f.fs.Visit(func(fl *flag.Flag) {
		for _, n := range ns {
			set = set || fl.Name == n
		}
	})
	return set
}

// errHelpShown ends a command whose --help was printed: exit status 0.
var errHelpShown = errors.New("help shown")

// usageError is a command line the command cannot run; Main prints the
// command's help after it, as runc does.
type usageError struct {
	flags *flagSet
	err   error
}

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// argCount is how many positional arguments a command takes: from min to
// max, any number above min when max is -1.
type argCount struct{ min, max int }

func exactly(n int) argCount { return argCount{n, n} }
func atLeast(n int) argCount { return argCount{n, -1} }

// parse parses args and returns the positional arguments, checking their
// number with runc's words. --help prints the command's help and returns
// errHelpShown.
func (f *flagSet) parse(args []string, want argCount) ([]string, error) {
	ordered, err := f.reorder(args)
	if err == nil {
		err = f.fs.Parse(ordered)
	}
	if err != nil {
		return nil, &usageError{f, err}
	}
	if f.help {
		f.printHelp(os.Stdout)
		return nil, errHelpShown
	}
	pos := f.fs.Args()
	name := f.fs.Name()
	switch {
	case want.min == want.max && len(pos) != want.min:
		err = fmt.Errorf("hostnet-runc: %q requires exactly %d argument(s)", name, want.min)
	case len(pos) < want.min:
		err = fmt.Errorf("hostnet-runc: %q requires a minimum of %d argument(s)", name, want.min)
	case want.max >= 0 && len(pos) > want.max:
		err = fmt.Errorf("hostnet-runc: %q requires a maximum of %d argument(s)", name, want.max)
	}
	if err != nil {
		return nil, &usageError{f, err}
	}
	return pos, nil
}

// reorder moves every flag (with its value) before the positional
// arguments, keeping their order, so that flag.Parse sees them all. Unlike
// urfave/cli, which leaves an unknown flag among the positional arguments
// (where a command taking an id then complains about their number), an
// unknown flag is refused by its name. After "--" nothing is a flag.
func (f *flagSet) reorder(args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		arg := args[i]
		if f.inOrder && len(pos) > 0 {
			pos = append(pos, args[i:]...)
			break
		}
		if arg == "--" {
			pos = append(append([]string{"--"}, pos...), args[i+1:]...)
			break
		}
		if len(arg) < 2 || arg[0] != '-' {
			pos = append(pos, arg)
			continue
		}
		name, hasValue := strings.TrimLeft(arg, "-"), false
		if n, _, ok := strings.Cut(name, "="); ok {
			name, hasValue = n, true
		}
		fl := f.fs.Lookup(name)
		if fl == nil {
			return nil, fmt.Errorf("flag provided but not defined: -%s", name)
		}
		flags = append(flags, arg)
		if b, ok := fl.Value.(interface{ IsBoolFlag() bool }); (ok && b.IsBoolFlag()) || hasValue {
			continue
		}
		if i+1 == len(args) {
			return nil, fmt.Errorf("flag needs an argument: -%s", name)
		}
		i++
		flags = append(flags, args[i])
	}
	if len(pos) > 0 && pos[0] != "--" {
		// flag.Parse must not read a positional "-x" (after "--") as a flag.
		pos = append([]string{"--"}, pos...)
	}
	return append(flags, pos...), nil
}

// printHelp writes the command's help in urfave/cli's layout.
func (f *flagSet) printHelp(w io.Writer) {
	c := f.cmd
	if c == nil {
		fmt.Fprint(w, usage())
		return
	}
	fmt.Fprintf(w, "NAME:\n   hostnet-runc %s - %s\n\nUSAGE:\n   hostnet-runc %s", c.name, c.summary, c.name)
	if len(f.docs) > 1 {
		fmt.Fprint(w, " [command options]")
	}
	fmt.Fprintf(w, " %s\n", c.args)
	if c.description != "" {
		fmt.Fprintf(w, "\nDESCRIPTION:\n   %s\n", c.description)
	}
	fmt.Fprint(w, "\nOPTIONS:\n")
	writeFlagDocs(w, f.docs)
}

func writeFlagDocs(w io.Writer, docs []flagDoc) {
	var lines [][2]string
	width := 0
	for _, d := range docs {
		if !d.visible {
			continue
		}
		var parts []string
		for _, n := range d.names {
			dash := "--"
			if len(n) == 1 {
				dash = "-"
			}
			if d.value {
				n += " value"
			}
			parts = append(parts, dash+n)
		}
		left := strings.Join(parts, ", ")
		right := d.usage
		if d.deflt != "" && d.deflt != `""` && d.deflt != "0" {
			right += " (default: " + d.deflt + ")"
		}
		lines = append(lines, [2]string{left, right})
		width = max(width, len(left))
	}
	for _, l := range lines {
		fmt.Fprintf(w, "   %-*s  %s\n", width, l[0], l[1])
	}
}
