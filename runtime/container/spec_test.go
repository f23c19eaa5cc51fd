package container

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	bundle := t.TempDir()
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return bundle
}

const validSpec = `{"ociVersion":"%s","process":{"args":["sh"],"cwd":"/"},"root":{"path":"rootfs"},
"linux":{"namespaces":[{"type":"mount"},{"type":"pid"}]}}`

func TestLoadSpec(t *testing.T) {
	for _, v := range []string{"1.0.0", "1.0.2-dev", "1.2.1", "1.3.0", "1.9.0"} {
		if _, err := LoadSpec(writeConfig(t, strings.Replace(validSpec, "%s", v, 1))); err != nil {
			t.Errorf("ociVersion %s refused: %v", v, err)
		}
	}
	for _, tc := range []struct{ name, body, want string }{
		{"malformed", `{"ociVersion": "1.0.0",`, "parse "},
		{"wrong version", strings.Replace(validSpec, "%s", "2.0.0", 1), `unsupported ociVersion "2.0.0"`},
		{"no process", `{"ociVersion":"1.0.0","root":{"path":"r"},"linux":{}}`, "process must be set"},
		{"empty args", `{"ociVersion":"1.0.0","process":{"args":[],"cwd":"/"},"root":{"path":"r"},"linux":{}}`, "process.args must not be empty"},
		{"relative cwd", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"tmp"},"root":{"path":"r"},"linux":{}}`, `process.cwd "tmp" must be an absolute path`},
		{"no root", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"linux":{}}`, "root.path must be set"},
		{"read-only root in the host's mount ns", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r","readonly":true},"linux":{"namespaces":[{"type":"pid"}]}}`, "root.readonly needs a mount namespace"},
		{"unknown ns", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"mount"},{"type":"bogus"}]}}`, `namespace type "bogus" is not supported`},
		{"duplicate ns", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"mount"},{"type":"mount"}]}}`, "listed twice"},
		{"relative device", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"devices":[{"path":"dev/fuse","type":"c","major":10,"minor":229}]}}`, `device path "dev/fuse" is not absolute`},
		{"relative mount", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"mounts":[{"destination":"tmp","type":"tmpfs"}],"linux":{"namespaces":[{"type":"mount"}]}}`, `mount destination "tmp" is not absolute`},
		// Idmapped mounts as runc checks them.
		{"idmapped mount without gid mappings", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"mounts":[{"destination":"/m","type":"bind","source":"/tmp","uidMappings":[{"containerID":0,"hostID":1000,"size":1}]}],"linux":{"namespaces":[{"type":"mount"}]}}`, "must have both uid and gid mappings"},
		{"idmapped tmpfs", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"mounts":[{"destination":"/m","type":"tmpfs","source":"tmpfs","options":["idmap"]}],"linux":{"namespaces":[{"type":"mount"},{"type":"user"}]}}`, "only supported for bind-mounts"},
		{"idmap without a user namespace", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"mounts":[{"destination":"/m","type":"bind","source":"/tmp","options":["rbind","idmap"]}],"linux":{"namespaces":[{"type":"mount"}]}}`, "it has none"},
		// What features reports as not implemented is refused, not ignored.
		{"intelRdt", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"intelRdt":{"closID":"x"}}}`, "linux.intelRdt is specified in config"},
		{"memoryPolicy", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"memoryPolicy":{"mode":"MPOL_BIND","nodes":"0"}}}`, "linux.memoryPolicy is specified in config"},
		{"netDevices", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"network"}],"netDevices":{"eth1":{}}}}`, "linux.netDevices is specified in config"},
		// Issue 10 item 7: sysctls outside the container's namespaces, as runc.
		{"host sysctl", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"ipc"},{"type":"uts"},{"type":"network"}],"sysctl":{"kernel.core_uses_pid":"1"}}}`, `sysctl "kernel.core_uses_pid" is not in a separate kernel namespace`},
		{"net sysctl in the host netns", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"sysctl":{"net/ipv4/ip_forward":"1"}}}`, `sysctl "net.ipv4.ip_forward" not allowed in host network namespace`},
		{"net sysctl in the host netns by path", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"network","path":"/proc/self/ns/net"}],"sysctl":{"net.ipv4.ip_forward":"1"}}}`, `not allowed in host network namespace`},
		{"leading dot sysctl", `{"ociVersion":"1.0.0","process":{"args":["sh"],"cwd":"/"},"root":{"path":"r"},"linux":{"namespaces":[{"type":"network"}],"sysctl":{".net.ipv4.ip_forward":"1"}}}`, `invalid sysctl name ".net.ipv4.ip_forward"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := writeConfig(t, tc.body)
			_, err := LoadSpec(bundle)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), filepath.Join(bundle, "config.json")) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
	if _, err := LoadSpec(t.TempDir()); err == nil || !strings.Contains(err.Error(), "JSON specification file") {
		t.Errorf("missing config.json: err = %v", err)
	}
}

// An exec's process gets the checks the container's got: the init relies
// on them (runc's validateProcessSpec checks both too).
func TestValidateProcess(t *testing.T) {
	if err := ValidateProcess(&specs.Process{Args: []string{"sh"}, Cwd: "/"}); err != nil {
		t.Errorf("valid process refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		p    *specs.Process
		want string
	}{
		{"none", nil, "process must be set"},
		{"no args", &specs.Process{Cwd: "/"}, "process.args must not be empty"},
		{"no cwd", &specs.Process{Args: []string{"sh"}}, "process.cwd must not be empty"},
		{"relative cwd", &specs.Process{Args: []string{"sh"}, Cwd: "tmp"}, `process.cwd "tmp" must be an absolute path`},
	} {
		if err := ValidateProcess(tc.p); err == nil || err.Error() != tc.want {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// Exec checks before it looks at the container.
	c := &Container{Dir: t.TempDir()}
	if _, err := c.Exec(ExecOpts{Process: &specs.Process{Args: []string{"sh"}, Cwd: "rel"}}); err == nil || !strings.Contains(err.Error(), `process.cwd "rel"`) {
		t.Errorf("Exec with a relative cwd: err = %v", err)
	}
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "web-1", "x_y.z+2", strings.Repeat("a", 64)} {
		if err := ValidateID(ok); err != nil {
			t.Errorf("ValidateID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../x", "a/b", "a b", "a\x00"} {
		if err := ValidateID(bad); err == nil {
			t.Errorf("ValidateID(%q) accepted", bad)
		}
	}
}

func TestProcessStart(t *testing.T) {
	start, zombie, err := processStart(os.Getpid())
	if err != nil || start == 0 || zombie {
		t.Fatalf("processStart(self) = %d, %v, %v", start, zombie, err)
	}
	if !processAlive(os.Getpid(), start) {
		t.Error("self not alive")
	}
	if processAlive(os.Getpid(), start+1) {
		t.Error("a different start time must mean a different (reused) pid")
	}
}

// TestLoadNewerState: a state written by a newer hostnet-runc (a higher
// format) is refused as such, not read as if it meant what this build's
// fields mean; a state from before formats were recorded reads.
func TestLoadNewerState(t *testing.T) {
	root := t.TempDir()
	for id, format := range map[string]string{"old": "", "same": `,"format":1`, "newer": `,"format":2`} {
		if err := os.MkdirAll(filepath.Join(root, id), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, id, stateFile), []byte(`{"id":"`+id+`"`+format+`}`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"old", "same"} {
		if _, err := Load(root, id); err != nil {
			t.Errorf("Load %s: %v", id, err)
		}
	}
	if _, err := Load(root, "newer"); !errors.Is(err, ErrNewerState) {
		t.Errorf("Load of a newer state = %v, want ErrNewerState", err)
	}
}

// TestStartHonoursContext: a start whose init never opens the exec fifo,
// or opens it and writes but never execs (a hung startContainer hook),
// returns once its context ends instead of waiting with no limit; the
// shim, which runs start in its own process, passes containerd's.
func TestStartHonoursContext(t *testing.T) {
	start, _, err := processStart(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, initWrites := range []bool{false, true} {
		t.Run(fmt.Sprintf("init writes %v", initWrites), func(t *testing.T) {
			dir := t.TempDir()
			fifo := filepath.Join(dir, fifoName)
			if err := unix.Mkfifo(fifo, 0o600); err != nil {
				t.Fatal(err)
			}
			// This process stands for the live init.
			c := &Container{Dir: dir, State: State{ID: "hung", InitPid: os.Getpid(), InitStart: start}}
			if initWrites {
				go func() {
					w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
					if err != nil {
						return
					}
					_, _ = w.Write([]byte{0})
					t.Cleanup(func() { w.Close() })
				}()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- c.Start(ctx) }()
			select {
			case err := <-done:
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Start = %v, want the context's deadline", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Start still waits 10 s after its context ended")
			}
		})
	}
}
