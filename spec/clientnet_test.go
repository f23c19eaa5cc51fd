package spec

import (
	"encoding/json"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestResolveMode(t *testing.T) {
	newNet := specs.LinuxNamespace{Type: specs.NetworkNamespace}
	podNet := specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/run/netns/cni-1"}
	mk := func(ann map[string]string, ns ...specs.LinuxNamespace) *specs.Spec {
		return &specs.Spec{Annotations: ann, Linux: &specs.Linux{Namespaces: ns}}
	}
	sandbox := func(kv ...string) map[string]string {
		m := map[string]string{CRIContainerTypeAnnotation: "sandbox"}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	nerdctl := func(networks string, kv ...string) map[string]string {
		m := map[string]string{NerdctlNetworksAnnotation: networks}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, tc := range []struct {
		name     string
		spec     *specs.Spec
		def      NetworkMode
		want     NetworkMode
		explicit bool
		nerdctl  bool
		errHas   []string
	}{
		{name: "no client", spec: mk(nil, newNet), def: ModeHost, want: ModeHost},
		{name: "annotation", spec: mk(map[string]string{NetworkAnnotation: "bridge"}, newNet), def: ModeHost, want: ModeBridge, explicit: true},

		// Item 4: a hostNetwork pod (a sandbox with no netns) is the node's.
		{name: "hostNetwork pod asks for bridge", spec: mk(sandbox(NetworkAnnotation, "bridge")), def: ModeHost,
			errHas: []string{NetworkAnnotation + "=bridge", "hostNetwork pod", "node's IP"}},
		{name: "hostNetwork pod, default bridge", spec: mk(sandbox()), def: ModeBridge, want: ModeHost},
		{name: "hostNetwork pod, default host", spec: mk(sandbox()), def: ModeHost, want: ModeHost},
		{name: "pod network sandbox keeps bridge request", spec: mk(sandbox(NetworkAnnotation, "bridge"), podNet), def: ModeHost, want: ModeBridge, explicit: true},
		{name: "hostNetwork pod's container", spec: mk(map[string]string{CRIContainerTypeAnnotation: "container", NetworkAnnotation: "bridge"},
			specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: "/proc/42/ns/net"}), def: ModeHost, want: ModeBridge, explicit: true},
		// A pod author's nerdctl annotations are not nerdctl's.
		{name: "CRI spec with nerdctl annotation", spec: mk(sandbox(NerdctlNetworksAnnotation, `["bridge"]`), podNet), def: ModeHost, want: ModeHost},

		// Item 7: nerdctl's network is honoured.
		{name: "nerdctl default network", spec: mk(nerdctl(`["bridge"]`), newNet), def: ModeHost, want: ModeNone, nerdctl: true},
		{name: "nerdctl no network named", spec: mk(nerdctl(`[]`), newNet), def: ModeHost, want: ModeNone, nerdctl: true},
		{name: "nerdctl compose network", spec: mk(nerdctl(`["proj_default"]`), newNet), def: ModeBridge, want: ModeNone, nerdctl: true},
		{name: "nerdctl host", spec: mk(nerdctl(`["host"]`)), def: ModeBridge, want: ModeHost, nerdctl: true},
		{name: "nerdctl none", spec: mk(nerdctl(`["none"]`), newNet), def: ModeHost, want: ModeNone, nerdctl: true},
		{name: "nerdctl container:", spec: mk(nerdctl(`["container:abc"]`), podNet), def: ModeHost, want: ModeNone, nerdctl: true},
		{name: "nerdctl none with bridge annotation", spec: mk(nerdctl(`["none"]`, NetworkAnnotation, "bridge"), newNet), def: ModeHost, want: ModeBridge, explicit: true, nerdctl: true},
		{name: "nerdctl none with host annotation", spec: mk(nerdctl(`["none"]`, NetworkAnnotation, "host"), newNet), def: ModeHost, want: ModeHost, explicit: true, nerdctl: true},
		{name: "nerdctl CNI with none annotation", spec: mk(nerdctl(`["bridge"]`, NetworkAnnotation, "none"), newNet), def: ModeHost, want: ModeNone, explicit: true, nerdctl: true},
		{name: "nerdctl CNI with host annotation", spec: mk(nerdctl(`["bridge"]`, NetworkAnnotation, "host"), newNet), def: ModeHost,
			errHas: []string{NetworkAnnotation + "=host", "--network bridge", "the host's", "--network host"}},
		{name: "nerdctl CNI with bridge annotation", spec: mk(nerdctl(`["bridge"]`, NetworkAnnotation, "bridge"), newNet), def: ModeHost,
			errHas: []string{NetworkAnnotation + "=bridge", "--network none"}},
		{name: "nerdctl host with bridge annotation", spec: mk(nerdctl(`["host"]`, NetworkAnnotation, "bridge")), def: ModeHost,
			errHas: []string{"--network host", "--network none"}},
		{name: "nerdctl mixed", spec: mk(nerdctl(`["host","bridge"]`), newNet), def: ModeHost, errHas: []string{NerdctlNetworksAnnotation, "mixed"}},
		{name: "nerdctl bad JSON", spec: mk(nerdctl(`bridge`), newNet), def: ModeHost, errHas: []string{NerdctlNetworksAnnotation}},
		{name: "bad mode", spec: mk(nerdctl(`["none"]`, NetworkAnnotation, "macvlan"), newNet), def: ModeHost, errHas: []string{NetworkAnnotation, "macvlan"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ResolveMode(tc.spec, tc.def)
			if tc.errHas != nil {
				if err == nil {
					t.Fatalf("ResolveMode = %+v, want an error", r)
				}
				for _, w := range tc.errHas {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Mode != tc.want || r.Explicit != tc.explicit || r.Nerdctl != tc.nerdctl || r.Why == "" {
				t.Errorf("ResolveMode = %+v, want mode %s explicit %t nerdctl %t and a reason", r, tc.want, tc.explicit, tc.nerdctl)
			}
		})
	}
}

func TestParseNerdctlNetworkConfig(t *testing.T) {
	got, err := ParseNerdctlNetworkConfig([]byte(`{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"},` +
		`{"HostPort":5353,"ContainerPort":53,"Protocol":"UDP","HostIP":"127.0.0.1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if got, err := ParseNerdctlNetworkConfig([]byte(`{}`)); err != nil || len(got) != 0 {
		t.Errorf("no ports: %v, %v", got, err)
	}
	for _, bad := range []string{`{"portMappings":[{"HostPort":0,"ContainerPort":80,"Protocol":"tcp"}]}`,
		`{"portMappings":[{"HostPort":80,"ContainerPort":70000,"Protocol":"tcp"}]}`,
		`{"portMappings":[{"HostPort":80,"ContainerPort":80,"Protocol":"sctp"}]}`,
		`{"portMappings":[{"HostPort":80,"ContainerPort":80,"Protocol":"tcp","HostIP":"x"}]}`, `[`} {
		if _, err := ParseNerdctlNetworkConfig([]byte(bad)); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

// FuzzResolveMode: a client's annotations (nerdctl's networks, CRI's
// container type, hostnet's mode) never panic the resolution, and its
// safety rules hold whatever they say: a CRI hostNetwork sandbox never
// gets bridge mode, nerdctl's CNI networks never get host or bridge mode.
func FuzzResolveMode(f *testing.F) {
	for _, seed := range [][3]string{{`["bridge"]`, "", ""}, {`["host"]`, "bridge", ""}, {`["none"]`, "bridge", ""},
		{`[]`, "host", ""}, {`["container:x"]`, "", ""}, {`["host","x"]`, "", ""}, {``, "bridge", "sandbox"}, {"", "", "container"}} {
		f.Add(seed[0], seed[1], seed[2], false, true)
	}
	f.Fuzz(func(t *testing.T, networks, mode, criType string, hasNetworks, newNetNS bool) {
		s := &specs.Spec{Annotations: map[string]string{}, Linux: &specs.Linux{}}
		if hasNetworks {
			s.Annotations[NerdctlNetworksAnnotation] = networks
		}
		if mode != "" {
			s.Annotations[NetworkAnnotation] = mode
		}
		if criType != "" {
			s.Annotations[CRIContainerTypeAnnotation] = criType
		}
		if newNetNS {
			s.Linux.Namespaces = []specs.LinuxNamespace{{Type: specs.NetworkNamespace}}
		}
		for _, def := range Modes {
			r, err := ResolveMode(s, def)
			if err != nil {
				continue
			}
			if !slices.Contains(Modes, r.Mode) || r.Why == "" {
				t.Fatalf("ResolveMode = %+v", r)
			}
			if criType == "sandbox" && !newNetNS && r.Mode == ModeBridge {
				t.Fatalf("a hostNetwork sandbox got bridge mode: %+v", r)
			}
			if criType == "" && hasNetworks && r.Mode != ModeNone {
				var names []string
				if json.Unmarshal([]byte(networks), &names) == nil {
					if kind, err := nerdctlNetworkKind(names); err == nil && kind == "cni" {
						t.Fatalf("nerdctl's CNI network %q got mode %s", networks, r.Mode)
					}
				}
			}
		}
	})
}

// FuzzParseNerdctlNetworkConfig: what is accepted from nerdctl's
// network-config.json is valid and formats as hostnet's ports annotation.
func FuzzParseNerdctlNetworkConfig(f *testing.F) {
	f.Add(`{"portMappings":[{"HostPort":8080,"ContainerPort":80,"Protocol":"tcp","HostIP":"0.0.0.0"}]}`)
	f.Add(`{"portMappings":[{"HostPort":1,"ContainerPort":65535,"Protocol":"UDP","HostIP":"::1"}]}`)
	f.Add(`{}`)
	f.Fuzz(func(t *testing.T, data string) {
		ports, err := ParseNerdctlNetworkConfig([]byte(data))
		if err != nil {
			return
		}
		var items []string
		for _, p := range ports {
			if p.HostPort == 0 || p.ContainerPort == 0 || (p.Protocol != "tcp" && p.Protocol != "udp") {
				t.Fatalf("accepted an invalid mapping %+v", p)
			}
			items = append(items, p.String())
		}
		again, err := ParsePorts(strings.Join(items, ","))
		if err != nil || !slices.Equal(again, ports) {
			t.Fatalf("%v formats as %q, which parses as %v, %v", ports, items, again, err)
		}
	})
}
