package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"0": 0, "9": unix.SIGKILL, "KILL": unix.SIGKILL, "sigterm": unix.SIGTERM, "SIGUSR1": unix.SIGUSR1, "HUP": unix.SIGHUP} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "65", "NOPE", "-1"} {
		if _, err := ParseSignal(bad); err == nil {
			t.Errorf("ParseSignal(%q) accepted", bad)
		}
	}
}

func TestParseUser(t *testing.T) {
	var u specs.User
	if err := parseUser("1000:100", &u); err != nil || u.UID != 1000 || u.GID != 100 {
		t.Errorf("parseUser(1000:100) = %+v, %v", u, err)
	}
	if err := parseUser("0", &u); err != nil || u.UID != 0 {
		t.Errorf("parseUser(0) = %+v, %v", u, err)
	}
	for _, bad := range []string{"root", "1:x", ""} {
		if err := parseUser(bad, &u); err == nil {
			t.Errorf("parseUser(%q) accepted", bad)
		}
	}
}

func TestDefaultSpecValid(t *testing.T) {
	s := DefaultSpec()
	if s.Version != SpecVersion || s.Process == nil || s.Root.Path != "rootfs" {
		t.Fatalf("default spec %+v", s)
	}
}

func TestFlagsAnywhere(t *testing.T) {
	type result struct {
		period, cwd string
		force       bool
		pos         []string
	}
	parse := func(inOrder bool, args ...string) (result, error) {
		var r result
		f := newFlags("update")
		f.inOrder = inOrder
		f.stringVar(&r.period, "cpu-period", "u")
		f.stringVar(&r.cwd, "cwd", "u")
		f.boolVar(&r.force, "force, f", "u")
		pos, err := f.parse(args, atLeast(0))
		r.pos = pos
		return r, err
	}
	for _, tc := range []struct {
		args    []string
		inOrder bool
		want    result
	}{
		{args: []string{"id", "--cpu-period", "900000"}, want: result{period: "900000", pos: []string{"id"}}},
		{args: []string{"--cpu-period=1", "id", "-f"}, want: result{period: "1", force: true, pos: []string{"id"}}},
		{args: []string{"id", "-f=false", "x"}, want: result{pos: []string{"id", "x"}}},
		{args: []string{"id", "--", "--cpu-period", "1"}, want: result{pos: []string{"id", "--cpu-period", "1"}}},
		{args: []string{"-", "--cwd", "-x"}, want: result{cwd: "-x", pos: []string{"-"}}},
		// exec and ps: what follows the first positional argument is its.
		{args: []string{"-f", "id", "ls", "-f", "--", "--cwd"}, inOrder: true, want: result{force: true, pos: []string{"id", "ls", "-f", "--", "--cwd"}}},
	} {
		got, err := parse(tc.inOrder, tc.args...)
		if err != nil || got.period != tc.want.period || got.cwd != tc.want.cwd || got.force != tc.want.force || !slices.Equal(got.pos, tc.want.pos) {
			t.Errorf("parse(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	for args, want := range map[string]string{
		"id --bogus 1":        "flag provided but not defined: -bogus",
		"--bogus=1 id":        "flag provided but not defined: -bogus",
		"id --cpu-period":     "flag needs an argument: -cpu-period",
		"id -f=maybe":         `invalid boolean value "maybe" for -f`,
		"id -- x --bogus":     "",
		"id --cwd / --bogus2": "flag provided but not defined: -bogus2",
	} {
		_, err := parse(false, strings.Fields(args)...)
		var ue *usageError
		if want == "" && err != nil || want != "" && (!errors.As(err, &ue) || !strings.Contains(err.Error(), want)) {
			t.Errorf("parse(%q) error = %v, want %q", args, err, want)
		}
	}
}

func TestArgCount(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want argCount
		err  string
	}{
		{nil, exactly(1), `"kill" requires exactly 1 argument(s)`},
		{[]string{"a", "b"}, exactly(1), `"kill" requires exactly 1 argument(s)`},
		{nil, argCount{1, 2}, `"kill" requires a minimum of 1 argument(s)`},
		{[]string{"a", "b", "c"}, argCount{1, 2}, `"kill" requires a maximum of 2 argument(s)`},
		{[]string{"a", "b"}, argCount{1, 2}, ""},
		{[]string{"a", "b"}, atLeast(1), ""},
	} {
		_, err := newFlags("kill").parse(tc.args, tc.want)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("parse(%q, %+v) = %v, want %q", tc.args, tc.want, err, tc.err)
		}
	}
}
