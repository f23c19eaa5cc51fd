package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/integration/internal/daemon"
	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

// linkNames returns the interface names of `ip -o link` output, sorted.
// Lines look like "2: eth0@if5: <BROADCAST,...> mtu 1500 ...".
func linkNames(t *testing.T, out string) []string {
	t.Helper()
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("unexpected `ip -o link` line %q", line)
		}
		name, _, _ := strings.Cut(strings.TrimSuffix(f[1], ":"), "@")
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func hostLinkNames(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatalf("ip -o link on the host: %v", err)
	}
	return linkNames(t, string(out))
}

func TestHostInterfacesVisible(t *testing.T) {
	// Interfaces may come and go while the container runs, so the host is
	// listed before and after: the container must see every interface that
	// existed throughout, and none that never existed.
	before := hostLinkNames(t)
	out, err := ctrRun(t, newID(t), "ip", "-o", "link")
	if err != nil {
		t.Fatal(err)
	}
	after := hostLinkNames(t)
	got := linkNames(t, out)
	if len(before) < 2 {
		t.Logf("the host has only %v; the check is weaker than usual", before)
	}
	for _, name := range before {
		if slices.Contains(after, name) && !slices.Contains(got, name) {
			t.Errorf("container does not see host interface %s; it sees %v", name, got)
		}
	}
	for _, name := range got {
		if !slices.Contains(before, name) && !slices.Contains(after, name) {
			t.Errorf("container sees interface %s, which the host does not have (host: %v)", name, after)
		}
	}
}

func TestSharesOnlyTheNetworkNamespace(t *testing.T) {
	kinds := []string{"net", "pid", "mnt", "uts", "ipc"}
	out, err := ctrRun(t, newID(t), "sh", "-c", `for n in `+strings.Join(kinds, " ")+`; do echo "$n $(readlink /proc/self/ns/$n)"; done`)
	if err != nil {
		t.Fatal(err)
	}
	inContainer := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		kind, link, _ := strings.Cut(line, " ")
		inContainer[kind] = link
	}
	for _, kind := range kinds {
		host, err := os.Readlink("/proc/self/ns/" + kind)
		if err != nil {
			t.Fatal(err)
		}
		got := inContainer[kind]
		switch {
		case got == "":
			t.Errorf("container printed no %s namespace; output:\n%s", kind, out)
		case kind == "net" && got != host:
			t.Errorf("net namespace: container %s, host %s; want the same", got, host)
		case kind != "net" && got == host:
			t.Errorf("%s namespace: container shares the host's %s", kind, host)
		}
	}
}

// freeLoopbackPort returns a TCP port that was free on 127.0.0.1.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestLoopbackServerReachableFromHost(t *testing.T) {
	port := freeLoopbackPort(t)
	id := newID(t)
	const body = "hello from a hostnet container"
	bg := startCtrRun(t, id, "sh", "-c", fmt.Sprintf(
		"mkdir -p /tmp/www && echo '%s' > /tmp/www/index.html && exec httpd -f -p 127.0.0.1:%d -h /tmp/www", body, port))

	url := fmt.Sprintf("http://127.0.0.1:%d/index.html", port)
	hc := &http.Client{Timeout: 2 * time.Second}
	var lastErr error
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(url)
		if err != nil {
			lastErr = err
			time.Sleep(50 * time.Millisecond)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(b)); resp.StatusCode != http.StatusOK || got != body {
			t.Fatalf("GET %s: %s %q, want 200 %q", url, resp.Status, got, body)
		}
		lastErr = nil
		break
	}
	if lastErr != nil {
		t.Fatalf("server in the container not reachable on %s: %v\nctr stderr: %s", url, lastErr, bg.stderr.String())
	}
	mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	bg.wait(t, time.Minute)
}

func TestExitCodePropagates(t *testing.T) {
	_, err := ctrRun(t, newID(t), "sh", "-c", "exit 7")
	var ce *daemon.CtrError
	if !errors.As(err, &ce) {
		t.Fatalf("ctr run: got %v, want exit status 7", err)
	}
	if code := ce.ExitCode(); code != 7 {
		t.Fatalf("ctr run exited %d, want 7: %v", code, err)
	}
}

// TestKillRunningContainer kills a `ctr run --rm` container from another
// ctr and checks that run returns and the container leaves nothing behind.
func TestKillRunningContainer(t *testing.T) {
	id := newID(t)
	bg := startCtrRun(t, id, "sleep", "1000")
	fp := takeFootprint(t, id)

	mustCtr(t, "tasks", "kill", "--signal", "SIGKILL", id)
	if code := bg.wait(t, time.Minute); code != 128+9 {
		t.Errorf("ctr run exited %d after SIGKILL, want %d; stderr: %s", code, 128+9, bg.stderr.String())
	}
	assertGone(t, fp)
}

// TestDetachedLifecycle runs a detached container, stops it with ctr's
// default SIGTERM, deletes task and container, and checks the host is clean.
func TestDetachedLifecycle(t *testing.T) {
	id := newID(t)
	ctx := t.Context()
	// A shell as pid 1 ignores SIGTERM unless it installs a handler.
	mustCtr(t, ctrRunArgs([]string{"--detach"}, id, "sh", "-c", `trap "exit 0" TERM; sleep 1000 & wait`)...)
	waitRunning(t, id, nil, nil)
	fp := takeFootprint(t, id)

	c, err := testClient.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := c.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustCtr(t, "tasks", "kill", id)
	select {
	case st := <-exitc:
		if st.ExitCode() != 0 {
			t.Errorf("task exited %d after SIGTERM, want 0 from its trap", st.ExitCode())
		}
	case <-time.After(time.Minute):
		t.Fatal("task did not exit after `ctr tasks kill`")
	}
	mustCtr(t, "tasks", "delete", id)
	mustCtr(t, "containers", "delete", id)
	assertGone(t, fp)
}

// assertFailedRunLeftNothing checks the host after a `ctr run --rm` that
// failed before its task started.
func assertFailedRunLeftNothing(t *testing.T, id string) {
	t.Helper()
	// ctr gives containers the cgroupsPath /<namespace>/<id>.
	assertGone(t, footprint{id: id, cgroupPath: "/" + testDaemon.Namespace + "/" + id})
}

func TestMissingExecutable(t *testing.T) {
	id := newID(t)
	_, err := ctrRun(t, id, "nosuchbinary")
	if err == nil {
		t.Fatal("ctr run of a missing executable succeeded")
	}
	if !strings.Contains(err.Error(), "nosuchbinary") {
		t.Errorf("error does not name the executable: %v", err)
	}
	assertFailedRunLeftNothing(t, id)
}

func TestMissingWorkingDirectory(t *testing.T) {
	if testRuntime == daemon.RuncRuntime {
		t.Skip("runc creates a missing working directory; hostnet-runc refuses it")
	}
	id := newID(t)
	_, err := testDaemon.CtrOutput(t.Context(), ctrRunArgs([]string{"--rm", "--cwd", "/nope"}, id, "true")...)
	if err == nil {
		t.Fatal("ctr run with --cwd /nope succeeded")
	}
	if !strings.Contains(err.Error(), "/nope") {
		t.Errorf("error does not name the working directory: %v", err)
	}
	assertFailedRunLeftNothing(t, id)
}

// TestMalformedConfig calls hostnet-runc the way a shim does, on a bundle
// whose config.json is not JSON.
func TestMalformedConfig(t *testing.T) {
	runc := filepath.Join(binDir, "hostnet-runc")
	if _, err := os.Stat(runc); err != nil {
		if testRuntime == daemon.HostnetRuntime {
			t.Fatal(err)
		}
		t.Skipf("no hostnet-runc: %v", err)
	}
	tmp := t.TempDir()
	root, bundle, logPath := filepath.Join(tmp, "state"), filepath.Join(tmp, "bundle"), filepath.Join(tmp, "log.json")
	if err := os.MkdirAll(filepath.Join(bundle, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"ociVersion": "1.2.0", "process": {`), 0o644); err != nil {
		t.Fatal(err)
	}
	const id = "malformed-config"
	cmd := exec.CommandContext(t.Context(), runc, "--root", root, "--log", logPath, "--log-format", "json", "create", "--bundle", bundle, id)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("hostnet-runc create: %v, want exit status 1; output: %s", err, out.String())
	}

	logData, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatalf("no log file: %v", err)
	}
	if !hasErrorNaming(t, logData, "config.json") {
		t.Errorf(`log has no {"level":"error"} line whose msg names config.json:\n%s`, logData)
	}
	if _, err := os.Stat(filepath.Join(root, id)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state dir %s left behind (err=%v)", filepath.Join(root, id), err)
	}
}

// TestGoClientLifecycle runs a container through the containerd Go client,
// as a containerd integration would.
func TestGoClientLifecycle(t *testing.T) {
	ctx := t.Context()
	id := newID(t)
	img, err := testClient.GetImage(ctx, image.DefaultName)
	if err != nil {
		t.Fatal(err)
	}
	specOpts := []oci.SpecOpts{
		oci.WithImageConfig(img),
		oci.WithProcessArgs("sh", "-c", "readlink /proc/self/ns/net; exit 3"),
	}
	if testRuntime != daemon.HostnetRuntime {
		specOpts = append(specOpts, oci.WithHostNamespace(specs.NetworkNamespace))
	}
	c, err := testClient.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id, img),
		client.WithRuntime(testRuntime, nil),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatal(err)
	}

	var stdout, stderr bytes.Buffer
	task, err := c.NewTask(ctx, cio.NewCreator(cio.WithStreams(nil, &stdout, &stderr), cio.WithFIFODir(testDaemon.FIFODir)))
	if err != nil {
		t.Fatal(err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var st client.ExitStatus
	select {
	case st = <-exitc:
	case <-time.After(time.Minute):
		t.Fatal("task did not exit")
	}
	if err := st.Error(); err != nil {
		t.Fatal(err)
	}
	// Delete waits for the output to be copied.
	if _, err := task.Delete(ctx); err != nil {
		t.Fatal(err)
	}
	if code := st.ExitCode(); code != 3 {
		t.Errorf("exit code %d, want 3; stderr: %s", code, stderr.String())
	}
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(stdout.String()); got != hostNet {
		t.Errorf("container's net namespace %q, want the host's %q", got, hostNet)
	}
	if err := c.Delete(ctx, client.WithSnapshotCleanup); err != nil {
		t.Fatal(err)
	}
	assertNoMounts(t, id)
	assertNoRuntimeState(t, id)
}
