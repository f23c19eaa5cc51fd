package network

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/spec"
)

// TestPrepareCRIDefaultSysctls: a pod-network sandbox forced into host mode
// by annotation loses exactly containerd's default sysctls, with a warning;
// any other net.* sysctl still fails the create.
func TestPrepareCRIDefaultSysctls(t *testing.T) {
	podNet := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/cni-1"}
	for _, tc := range []struct {
		name     string
		sysctl   map[string]string
		wantLeft map[string]string
		wantErr  string
	}{
		{name: "defaults dropped", sysctl: map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647", "kernel.shm_rmid_forced": "1"},
			wantLeft: map[string]string{"kernel.shm_rmid_forced": "1"}},
		{name: "other value refused", sysctl: map[string]string{"net.ipv4.ip_unprivileged_port_start": "80"},
			wantErr: "net.ipv4.ip_unprivileged_port_start would change the host's network settings"},
		{name: "default beside another net sysctl", sysctl: map[string]string{
			"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.tcp_syncookies": "0"},
			wantErr: "sysctls net.ipv4.tcp_syncookies would change"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSpec("host", pidNS, podNet)
			s.Annotations[spec.CRIContainerTypeAnnotation] = "sandbox"
			s.Linux.Sysctl = tc.sysctl
			bundle, before := writeBundle(t, s)
			res, err := prepare(request(bundle, config.Network{}))
			if tc.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.wantErr)
				}
				if after, _ := readBack(t, bundle); string(after) != string(before) {
					t.Error("config.json changed although Prepare failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, after := readBack(t, bundle)
			if len(after.Linux.Sysctl) != len(tc.wantLeft) || after.Linux.Sysctl["kernel.shm_rmid_forced"] != tc.wantLeft["kernel.shm_rmid_forced"] {
				t.Errorf("sysctls = %v, want %v", after.Linux.Sysctl, tc.wantLeft)
			}
			if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "net.ipv4.ip_unprivileged_port_start=0, net.ipv4.ping_group_range=0 2147483647") {
				t.Errorf("warnings = %q, want one naming both dropped sysctls", res.Warnings)
			}
		})
	}
}

// TestPrepareClientNetworks: the mode a client that manages the network
// gets, and the refusals, through Prepare; none of them touches the bundle
// when it fails.
func TestPrepareClientNetworks(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ann      map[string]string
		ns       []specs.LinuxNamespace
		wantMode spec.NetworkMode
		wantWhy  string
		wantErr  string
	}{
		{name: "hostNetwork pod with bridge", ann: map[string]string{spec.CRIContainerTypeAnnotation: "sandbox", spec.NetworkAnnotation: "bridge"},
			ns: []specs.LinuxNamespace{pidNS}, wantErr: "a hostNetwork pod is on the node's network"},
		{name: "nerdctl bridge network", ann: map[string]string{spec.NerdctlNetworksAnnotation: `["bridge"]`},
			ns: []specs.LinuxNamespace{pidNS, newNet}, wantMode: spec.ModeNone},
		{name: "nerdctl bridge network, host asked", ann: map[string]string{spec.NerdctlNetworksAnnotation: `["bridge"]`, spec.NetworkAnnotation: "host"},
			ns: []specs.LinuxNamespace{pidNS, newNet}, wantErr: "pass --network host"},
		{name: "nerdctl host network", ann: map[string]string{spec.NerdctlNetworksAnnotation: `["host"]`},
			ns: []specs.LinuxNamespace{pidNS}, wantMode: spec.ModeHost},
		{name: "pod network left alone", ann: map[string]string{spec.CRIContainerTypeAnnotation: "container"},
			ns: []specs.LinuxNamespace{pidNS, joinNet}, wantMode: spec.ModeHost, wantWhy: "joins network namespace /proc/1/ns/net, left as it is"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &specs.Spec{Version: specs.Version, Annotations: tc.ann, Linux: &specs.Linux{Namespaces: tc.ns}}
			bundle, before := writeBundle(t, s)
			res, err := prepare(request(bundle, config.Network{}))
			if tc.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want invalid argument containing %q", err, tc.wantErr)
				}
				if after, _ := readBack(t, bundle); string(after) != string(before) {
					t.Error("config.json changed although Prepare failed")
				}
				return
			}
			if err != nil || res.Mode != tc.wantMode || res.Why == "" || !strings.Contains(res.Why, tc.wantWhy) {
				t.Fatalf("Prepare = %+v, %v; want mode %s with a reason saying %q", res, err, tc.wantMode, tc.wantWhy)
			}
			if after, _ := readBack(t, bundle); tc.wantMode == spec.ModeNone && string(after) != string(before) {
				t.Error("mode none rewrote config.json")
			}
		})
	}
}

// TestPrepareNerdctlPorts: nerdctl's -p, kept in its state directory, is
// refused in bridge mode with the annotation to use instead; a FIFO or a
// symlink there is not followed or waited on.
func TestPrepareNerdctlPorts(t *testing.T) {
	stateDir := t.TempDir()
	conf := filepath.Join(stateDir, spec.NerdctlNetworkConfigFile)
	bridgeSpec := func() *specs.Spec {
		return &specs.Spec{Version: specs.Version, Linux: &specs.Linux{Namespaces: []specs.LinuxNamespace{pidNS, newNet}},
			Annotations: map[string]string{spec.NerdctlNetworksAnnotation: `["none"]`, spec.NetworkAnnotation: "bridge", spec.NerdctlStateDirAnnotation: stateDir}}
	}
	prepare := func() error {
		bundle, before := writeBundle(t, bridgeSpec())
		_, err := prepare(request(bundle, config.Network{}))
		if after, _ := readBack(t, bundle); string(after) != string(before) {
			t.Error("config.json changed although Prepare failed")
		}
		return err
	}
	if err := os.WriteFile(conf, []byte(`{"portMappings":[{"HostPort":18080,"ContainerPort":80,"Protocol":"tcp","HostIP":"127.0.0.1"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	err := prepare()
	if !errors.Is(err, errdefs.ErrInvalidArgument) || !strings.Contains(err.Error(), "--annotation "+spec.PortsAnnotation+"=127.0.0.1:18080:80/tcp instead of -p") {
		t.Fatalf("err = %v, want the annotation to pass instead", err)
	}
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(conf, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := prepare(); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("FIFO: err = %v", err)
	}
	os.Remove(conf)
	if err := os.Symlink("/etc/hostname", conf); err != nil {
		t.Fatal(err)
	}
	if err := prepare(); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("symlink: err = %v", err)
	}
}
