package cli

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestParseSignal(t *testing.T) {
	for in, want := range map[string]unix.Signal{"9": unix.SIGKILL, "KILL": unix.SIGKILL, "sigterm": unix.SIGTERM, "SIGUSR1": unix.SIGUSR1, "HUP": unix.SIGHUP} {
		got, err := ParseSignal(in)
		if err != nil || got != want {
			t.Errorf("ParseSignal(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "0", "65", "NOPE", "-1"} {
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
