package shimcgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/cgroups/v3"
	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types/runc/options"
	runtimeoptions "github.com/containerd/containerd/api/types/runtimeoptions/v1"
	"google.golang.org/protobuf/proto"
)

func params(t *testing.T, opts ...proto.Message) *bootapi.BootstrapParams {
	t.Helper()
	p := &bootapi.BootstrapParams{}
	for _, o := range opts {
		if err := p.AddExtension(o); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestJoinWithoutShimCgroup(t *testing.T) {
	// Not asked for: nothing to do, whatever the pid.
	for _, p := range []*bootapi.BootstrapParams{
		params(t),
		params(t, &options.Options{BinaryName: "runc"}),
		params(t, &runtimeoptions.Options{ConfigPath: "/etc/hostnet.toml"}),
	} {
		if err := Join(p, -1); err != nil {
			t.Errorf("Join(%v) = %v", p, err)
		}
	}
}

func TestJoinMissingCgroup(t *testing.T) {
	p := params(t, &options.Options{ShimCgroup: fmt.Sprintf("/hostnet-shimcgroup-missing-%d", os.Getpid())})
	if err := Join(p, os.Getpid()); err == nil || !strings.Contains(err.Error(), "hostnet-shimcgroup-missing") {
		t.Errorf("Join into a cgroup that does not exist = %v, want an error naming it", err)
	}
}

func TestJoin(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	name := fmt.Sprintf("/hostnet-shimcgroup-test-%d", os.Getpid())
	dirs := []string{filepath.Join("/sys/fs/cgroup", name)}
	if cgroups.Mode() != cgroups.Unified {
		dirs = []string{filepath.Join("/sys/fs/cgroup/memory", name), filepath.Join("/sys/fs/cgroup/pids", name)}
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(d) })
	}
	child := exec.Command("sleep", "100")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	if err := Join(params(t, &options.Options{ShimCgroup: name}), child.Process.Pid); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		procs, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(procs)) != fmt.Sprint(child.Process.Pid) {
			t.Errorf("%s holds %q, want the child %d", d, procs, child.Process.Pid)
		}
	}
}
