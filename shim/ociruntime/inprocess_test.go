package ociruntime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// TestLauncherSelection: hostnet's own hostnet-runc, by any path to the
// same file, runs in-process; anything else, a copy of it included, goes
// through go-runc.
func TestLauncherSelection(t *testing.T) {
	dir := t.TempDir()
	own := filepath.Join(dir, "hostnet-runc")
	writeExecutable(t, own)
	symlink := filepath.Join(dir, "symlink")
	if err := os.Symlink(own, symlink); err != nil {
		t.Fatal(err)
	}
	hardlink := filepath.Join(dir, "hardlink")
	if err := os.Link(own, hardlink); err != nil {
		t.Fatal(err)
	}
	otherDir := t.TempDir()
	copied := filepath.Join(otherDir, "hostnet-runc")
	writeExecutable(t, copied)
	runc := filepath.Join(otherDir, "runc")
	writeExecutable(t, runc)

	for _, tc := range []struct {
		name, binary, own string
		inProcess         bool
	}{
		{name: "own", binary: own, own: own, inProcess: true},
		{name: "symlink to own", binary: symlink, own: own, inProcess: true},
		{name: "hard link to own", binary: hardlink, own: own, inProcess: true},
		{name: "another hostnet-runc", binary: copied, own: own},
		{name: "runc", binary: runc, own: own},
		{name: "missing binary", binary: filepath.Join(dir, "missing"), own: own},
		{name: "no own runtime", binary: own, own: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Config{Binary: tc.binary, Root: "/run/r/ns", SystemdCgroup: true}
			l := newLauncher(cfg, "/b/log.json", tc.own)
			var cli *goRunc
			switch l := l.(type) {
			case *inProcess:
				if !tc.inProcess {
					t.Fatalf("%s runs in-process, want go-runc", tc.binary)
				}
				if l.root != cfg.Root || l.log != "/b/log.json" {
					t.Errorf("in-process root %s, log %s; want %s, /b/log.json", l.root, l.log, cfg.Root)
				}
				cli = l.cli
			case *goRunc:
				if tc.inProcess {
					t.Fatalf("%s runs through go-runc, want in-process", tc.binary)
				}
				cli = l
			default:
				t.Fatalf("launcher %T", l)
			}
			// Create and exec, in-process too, run the binary asked for.
			if cli.runc.Command != tc.binary || cli.runc.Root != cfg.Root || !cli.runc.SystemdCgroup || cli.runc.Log != "/b/log.json" {
				t.Errorf("go-runc runs %+v, want %s with the config's root and cgroup driver", cli.runc, tc.binary)
			}
		})
	}
}

var (
	buildOnce    sync.Once
	builtRuntime string
	buildErr     error
)

// runtimeBinary is hostnet-runc: $HOSTNET_RUNC (make integration's), else
// built from this checkout.
func runtimeBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("HOSTNET_RUNC"); p != "" {
		return p
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "hostnet-ociruntime-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtRuntime = filepath.Join(dir, "hostnet-runc")
		cmd := exec.Command("go", "build", "-o", builtRuntime, "github.com/hostnet-dev/hostnet/runtime/cmd/hostnet-runc")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build hostnet-runc: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtRuntime
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtRuntime != "" {
		os.RemoveAll(filepath.Dir(builtRuntime))
	}
	os.Exit(code)
}

// TestInProcessErrorsAsCommandLine: for containers that do not exist, have
// a bad id or a state that cannot be read, every in-process operation
// fails (or, delete, succeeds) as the same operation through hostnet-runc's
// command line does: the same text, the same class, and the same entry in
// the runtime's log.
func TestInProcessErrorsAsCommandLine(t *testing.T) {
	bin := runtimeBinary(t)
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "corrupt"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "corrupt", "state.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	cliLog := filepath.Join(t.TempDir(), "log.json")
	inLog := filepath.Join(t.TempDir(), "log.json")
	cfg := Config{Binary: bin, Root: root}
	cli := newGoRunc(cfg, cliLog)
	in := &inProcess{cli: newGoRunc(cfg, inLog), root: root, log: inLog}
	ctx := context.Background()

	type op struct {
		name string
		run  func(Launcher, string) error
	}
	ops := []op{
		{"start", func(l Launcher, id string) error { return l.Start(ctx, id) }},
		{"kill", func(l Launcher, id string) error { return l.Kill(ctx, id, 9, false) }},
		{"kill --all", func(l Launcher, id string) error { return l.Kill(ctx, id, 15, true) }},
		{"pause", func(l Launcher, id string) error { return l.Pause(ctx, id) }},
		{"resume", func(l Launcher, id string) error { return l.Resume(ctx, id) }},
		{"ps", func(l Launcher, id string) error { _, err := l.Ps(ctx, id); return err }},
		{"update", func(l Launcher, id string) error { return l.Update(ctx, id, &specs.LinuxResources{}) }},
		{"delete", func(l Launcher, id string) error { return l.Delete(ctx, id, false) }},
		{"delete --force", func(l Launcher, id string) error { return l.Delete(ctx, id, true) }},
	}
	for _, id := range []string{"missing", "../escape", "corrupt"} {
		for _, o := range ops {
			t.Run(o.name+" "+id, func(t *testing.T) {
				cliOff, inOff := logOffset(cliLog), logOffset(inLog)
				want := o.run(cli, id)
				got := o.run(in, id)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("in-process: %v\ncommand line: %v", got, want)
				}
				if errdefs.IsNotFound(got) != errdefs.IsNotFound(want) {
					t.Errorf("in-process not-found %v, command line %v (%v)", errdefs.IsNotFound(got), errdefs.IsNotFound(want), want)
				}
				if g, w := lastErrorSince(inLog, inOff), lastErrorSince(cliLog, cliOff); g != w {
					t.Errorf("in-process logged %q, command line %q", g, w)
				}
			})
		}
	}
	// Neither removed the unreadable state, nor anything outside root.
	if _, err := os.Stat(filepath.Join(root, "corrupt", "state.json")); err != nil {
		t.Errorf("state of corrupt: %v", err)
	}
}

// TestInProcessPanic: a panic in the runtime's code fails the one call, as
// a runtime that crashed would, and is written to the runtime's log.
func TestInProcessPanic(t *testing.T) {
	logPath := filepath.Join(t.TempDir(), "log.json")
	in := &inProcess{cli: newGoRunc(Config{}, logPath), root: t.TempDir(), log: logPath}
	err := in.call(context.Background(), "kill", func() error { panic("boom") })
	if err == nil || !strings.Contains(err.Error(), "OCI runtime kill failed") || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("call that panicked: %v, want an OCI runtime kill failure naming the panic", err)
	}
	if errdefs.IsNotFound(err) {
		t.Errorf("a panic classed not found: %v", err)
	}
	if msg := lastErrorSince(logPath, 0); !strings.Contains(msg, "boom") {
		t.Errorf("runtime log's last error %q, want the panic", msg)
	}
	// The launcher still works.
	if err := in.call(context.Background(), "kill", func() error { return errors.New("plain") }); err == nil || !strings.Contains(err.Error(), "plain") {
		t.Errorf("call after the panic: %v", err)
	}
}

// TestInProcessLeavesNewerStateToCommandLine: a container whose state a
// newer hostnet-runc wrote (the shim outlived an upgrade) is handled by
// the installed command line, for every operation the shim would run
// in-process, never by the shim's older code.
func TestInProcessLeavesNewerStateToCommandLine(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	const id = "upgraded"
	if err := os.MkdirAll(filepath.Join(root, id), 0o700); err != nil {
		t.Fatal(err)
	}
	state := fmt.Sprintf(`{"id":%q,"bundle":"/nonexistent","initPid":1,"format":%d}`, id, container.StateFormat+1)
	if err := os.WriteFile(filepath.Join(root, id, "state.json"), []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	// The command line: records its command and succeeds.
	calls := filepath.Join(dir, "calls")
	cli := filepath.Join(dir, "hostnet-runc")
	script := "#!/bin/sh\nfor a; do case $a in start|kill|delete|pause|resume|ps|update) echo $a >> " + calls + ";; esac; done\n" +
		"case \" $* \" in *' ps '*) echo '[]';; esac\n"
	if err := os.WriteFile(cli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	r := &inProcess{cli: newGoRunc(Config{Binary: cli, Root: root}, filepath.Join(dir, "log.json")), root: root, log: filepath.Join(dir, "log.json")}
	ctx := context.Background()
	for op, run := range map[string]func() error{
		"start":  func() error { return r.Start(ctx, id) },
		"kill":   func() error { return r.Kill(ctx, id, 15, false) },
		"delete": func() error { return r.Delete(ctx, id, true) },
		"pause":  func() error { return r.Pause(ctx, id) },
		"resume": func() error { return r.Resume(ctx, id) },
		"ps":     func() error { _, err := r.Ps(ctx, id); return err },
		"update": func() error { return r.Update(ctx, id, &specs.LinuxResources{}) },
	} {
		if err := os.WriteFile(calls, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := run(); err != nil {
			t.Errorf("%s of a newer state: %v, want the command line's success", op, err)
		}
		got, _ := os.ReadFile(calls)
		if strings.TrimSpace(string(got)) != op {
			t.Errorf("%s of a newer state ran the command line for %q, want %q", op, got, op)
		}
	}
}
