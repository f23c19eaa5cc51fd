package cni

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/spec"
)

func writeList(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "net.conflist")
	if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var ports = []spec.PortMapping{
	{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
	{HostIP: netip.IPv4Unspecified(), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
}

// TestNewPorts: ports go to the plugins as portMappings, and a list
// without a plugin taking them refuses the ports instead of dropping them.
func TestNewPorts(t *testing.T) {
	without := writeList(t, `{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]}`)
	if _, err := New(bundle.New(t.TempDir()), without, "/opt/cni/bin", "c", "/ns", ports); err == nil ||
		!strings.Contains(err.Error(), `CNI network "n" (`+without+`) cannot publish ports 127.0.0.1:8080:80/tcp,0.0.0.0:5353:53/udp`) {
		t.Errorf("ports without portmap: %v", err)
	}
	if _, err := New(bundle.New(t.TempDir()), without, "/opt/cni/bin", "c", "/ns", nil); err != nil {
		t.Errorf("no ports without portmap: %v", err)
	}
	with := writeList(t, `{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}, {"type": "portmap", "capabilities": {"portMappings": true}}]}`)
	a, err := New(bundle.New(t.TempDir()), with, "/opt/cni/bin", "c", "/ns", ports)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(a.CapabilityArgs)
	want := `{"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp","hostIP":"127.0.0.1"},{"hostPort":5353,"containerPort":53,"protocol":"udp"}]}`
	if string(got) != want {
		t.Errorf("capability args %s, want %s", got, want)
	}
}

// TestRecord: what DEL needs survives in the bundle, the list with the
// plugins a directory beside it added inlined, whatever the file says later.
func TestRecord(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "net.conflist")
	if err := os.WriteFile(list, []byte(`{"cniVersion": "1.1.0", "name": "n", "plugins": [{"type": "bridge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "n", "20-fw.conf"), []byte(`{"type": "firewall"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b0 := bundle.New(t.TempDir())
	a, err := New(b0, list, "/opt/cni/bin", "ns-id-0123abcd", "/b/netns", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, []byte(`garbage`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := Read(b0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, p := range b.list.Plugins {
		types = append(types, p.Network.Type)
	}
	if b.Name() != "n" || strings.Join(types, ",") != "bridge,firewall" || b.ContainerID != "ns-id-0123abcd" || b.NetNS != "/b/netns" || b.IfName != "eth0" {
		t.Errorf("record read back: %+v, plugins %v", b, types)
	}
	if err := b.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(b0); !os.IsNotExist(err) {
		t.Errorf("Read after Remove: %v", err)
	}
}

// TestLoad: the list is read once, by the create that runs it, and every
// error names the file, as containerd's CRI does.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.conflist", `{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "bridge"}]}`)
	if list, err := Load(good); err != nil || list.Name != "n" || len(list.Plugins) != 1 {
		t.Fatalf("Load(%s) = %+v, %v", good, list, err)
	}
	fifo := filepath.Join(dir, "fifo.conflist")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.conflist"), "failed to load CNI configuration list " + filepath.Join(dir, "missing.conflist") + ": open"},
		{write("bad.conflist", `{"name": `), "invalid CNI configuration list " + filepath.Join(dir, "bad.conflist")},
		{write("conf.conflist", `{"cniVersion": "1.0.0", "name": "n", "type": "bridge"}`), "invalid CNI configuration list " + filepath.Join(dir, "conf.conflist")},
		{write("noname.conflist", `{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}`), "noname.conflist: error parsing configuration list: no name"},
		{write("empty.conflist", `{"cniVersion": "1.0.0", "name": "n", "plugins": []}`), "empty.conflist"},
		{fifo, fifo + ": not a regular file"},
		{dir, dir + ": not a regular file"},
		{"relative.conflist", `"relative.conflist": not an absolute path`},
	} {
		if _, err := Load(tc.path); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Load(%q) err = %v, want it to contain %q", tc.path, err, tc.want)
		}
	}
}
