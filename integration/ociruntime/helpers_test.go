package ociruntime

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/cli"
)

// env is one test's runtime state root, log and bundle.
type env struct {
	t      *testing.T
	root   string
	log    string
	bundle string
	id     string
	spec   *specs.Spec
	// inside, when set, wraps every runtime command (to run it in a
	// systemd sandbox).
	inside func(name string, args ...string) *exec.Cmd
	// global flags before the command, e.g. --systemd-cgroup.
	global []string
}

// newEnv prepares a bundle running args in the shared busybox root, with a
// cgroup and state of its own, all removed when the test ends.
func newEnv(t *testing.T, args ...string) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{
		t:      t,
		root:   filepath.Join(dir, "state"),
		log:    filepath.Join(dir, "log.json"),
		bundle: filepath.Join(dir, "bundle"),
		id:     fmt.Sprintf("hnt-%s-%d", strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name())), os.Getpid()),
		spec:   cli.DefaultSpec(),
	}
	if len(e.id) > 60 {
		// Never a leading '-': the runtime would read the id as a flag.
		e.id = strings.TrimLeft(e.id[len(e.id)-60:], "-")
	}
	e.spec.Process.Terminal = false
	e.spec.Process.Args = args
	e.spec.Root.Path = rootfsDir
	e.spec.Linux.CgroupsPath = "/hostnet-test/" + e.id
	if err := os.MkdirAll(e.bundle, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cleanup)
	return e
}

func (e *env) writeSpec() {
	e.t.Helper()
	data, err := json.Marshal(e.spec)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.bundle, "config.json"), data, 0o644); err != nil {
		e.t.Fatal(err)
	}
}

// rt runs hostnet-runc with the env's root and JSON log. Its output goes
// to files, not pipes: a created container's init inherits stdio and keeps it
// open, so reading a pipe to EOF would wait for the container to exit.
func (e *env) rt(args ...string) (string, error) {
	argv := append(append([]string{"--root", e.root, "--log", e.log, "--log-format", "json"}, e.global...), args...)
	cmd := exec.Command(runtimeBin, argv...)
	if e.inside != nil {
		cmd = e.inside(runtimeBin, argv...)
	}
	stdout, err := os.CreateTemp(e.t.TempDir(), "stdout")
	if err != nil {
		return "", err
	}
	defer stdout.Close()
	stderr, err := os.CreateTemp(e.t.TempDir(), "stderr")
	if err != nil {
		return "", err
	}
	defer stderr.Close()
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err = cmd.Run()
	out, _ := os.ReadFile(stdout.Name())
	if err != nil {
		msg, _ := os.ReadFile(stderr.Name())
		err = fmt.Errorf("hostnet-runc %s: %w: %s", strings.Join(args, " "), err, msg)
	}
	return string(out), err
}

func (e *env) mustRT(args ...string) string {
	e.t.Helper()
	out, err := e.rt(args...)
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

// create runs `create` with the bundle's stdio going to a file.
func (e *env) create(extra ...string) (string, error) {
	e.writeSpec()
	return e.rt(append(append([]string{"create", "--bundle", e.bundle}, extra...), e.id)...)
}

// createCapturing runs `create` with the container's stdio going to a
// file, whose path it returns, to read what the process prints once started.
func (e *env) createCapturing() string {
	e.t.Helper()
	out := filepath.Join(e.t.TempDir(), "out")
	f, err := os.Create(out)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	e.writeSpec()
	cmd := exec.Command(runtimeBin, "--root", e.root, "--log", e.log, "--log-format", "json", "create", "--bundle", e.bundle, e.id)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		e.t.Fatalf("create: %v: %s", err, e.lastError())
	}
	return out
}

func (e *env) state() specs.State {
	e.t.Helper()
	var s specs.State
	if err := json.Unmarshal([]byte(e.mustRT("state", e.id)), &s); err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) waitStatus(want specs.ContainerState) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := e.state()
		if s.Status == want {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("container status %s, want %s", s.Status, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// lastError is the msg of the last "error" line in the JSON log.
func (e *env) lastError() string {
	e.t.Helper()
	f, err := os.Open(e.log)
	if err != nil {
		e.t.Fatalf("no log file: %v", err)
	}
	defer f.Close()
	var msg string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var line struct{ Level, Msg string }
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			e.t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
		}
		if line.Level == "error" {
			msg = line.Msg
		}
	}
	return msg
}

// assertGone checks that nothing of the container is left: state, cgroup,
// mounts of its bundle.
func (e *env) assertGone() {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.root, e.id)); !os.IsNotExist(err) {
		e.t.Errorf("state directory of %s left behind (%v)", e.id, err)
	}
	for _, c := range cgroupDirs(e.spec.Linux.CgroupsPath) {
		if _, err := os.Stat(c); err == nil {
			e.t.Errorf("cgroup %s left behind", c)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if bytes.Contains(mounts, []byte(e.bundle)) {
		e.t.Errorf("mounts of %s left behind", e.bundle)
	}
}

func (e *env) cleanup() {
	_, _ = e.rt("delete", "--force", e.id)
	for _, c := range cgroupDirs(e.spec.Linux.CgroupsPath) {
		_ = os.Remove(c)
	}
	for _, c := range cgroupDirs("/hostnet-test") {
		_ = os.Remove(c) // only succeeds once empty
	}
}

// cgroupDirs lists the cgroup's directory in every mounted hierarchy.
func cgroupDirs(path string) []string {
	entries, _ := os.ReadDir("/sys/fs/cgroup")
	var dirs []string
	for _, h := range entries {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", h.Name(), path))
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", path))
	}
	return dirs
}
