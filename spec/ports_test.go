package spec

import (
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestParsePorts(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []PortMapping
		wantErr string
	}{
		{in: "8080:80", want: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "8080:80/udp, 9090:90/TCP", want: []PortMapping{
			{HostPort: 8080, ContainerPort: 80, Protocol: "udp"},
			{HostPort: 9090, ContainerPort: 90, Protocol: "tcp"},
		}},
		{in: "127.0.0.1:5353:53/udp", want: []PortMapping{{HostIP: netip.MustParseAddr("127.0.0.1"), HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}},
		{in: "[::1]:8443:443", want: []PortMapping{{HostIP: netip.MustParseAddr("::1"), HostPort: 8443, ContainerPort: 443, Protocol: "tcp"}}},
		{in: ":80", want: []PortMapping{{HostPort: 80, ContainerPort: 80, Protocol: "tcp"}}},
		{in: "", want: nil},
		{in: "80", wantErr: `invalid port mapping "80": want [hostIP:]hostPort:containerPort`},
		{in: "8080:80/sctp", wantErr: "protocol must be tcp or udp"},
		{in: "70000:80", wantErr: `host port: "70000" is not a port number`},
		{in: "8080:0", wantErr: `container port: "0" is not a port number`},
		{in: "bad:1:2", wantErr: "host IP"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePorts(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPortsForNerdctl(t *testing.T) {
	s := &specs.Spec{Annotations: map[string]string{
		PortsAnnotation:        "8080:80",
		NerdctlPortsAnnotation: `[{"HostPort":9000,"ContainerPort":9,"Protocol":"udp","HostIP":"0.0.0.0"}]`,
	}}
	got, err := PortsFor(s)
	if err != nil {
		t.Fatal(err)
	}
	want := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 9000, ContainerPort: 9, Protocol: "udp"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	s.Annotations[NerdctlPortsAnnotation] = "{"
	if _, err := PortsFor(s); err == nil || !strings.Contains(err.Error(), NerdctlPortsAnnotation) {
		t.Errorf("malformed nerdctl ports: err = %v", err)
	}
}

func TestCheckHostIPs(t *testing.T) {
	local := func(a netip.Addr) bool { return a == netip.MustParseAddr("192.0.2.1") || a.IsLoopback() }
	for _, tc := range []struct {
		annotations map[string]string
		want        string
	}{
		{map[string]string{PortsAnnotation: "8080:80,0.0.0.0:8081:80,192.0.2.1:8082:80,127.0.0.1:8083:80"}, ""},
		{map[string]string{PortsAnnotation: "8080:80,10.89.0.7:80:8080"},
			"annotation hostnet.containerd.io/ports: cannot publish port 10.89.0.7:80:8080/tcp: host IP 10.89.0.7 is not an address of this host"},
		{map[string]string{PortsAnnotation: "198.51.100.53:53:53/udp"}, "host IP 198.51.100.53 is not an address of this host"},
		{map[string]string{NerdctlPortsAnnotation: `[{"HostPort":53,"ContainerPort":53,"Protocol":"udp","HostIP":"198.51.100.53"}]`},
			"annotation nerdctl/ports: cannot publish port 198.51.100.53:53:53/udp"},
	} {
		ports, err := PublishedPorts(&specs.Spec{Annotations: tc.annotations})
		if err != nil {
			t.Fatal(err)
		}
		err = CheckHostIPs(ports, local)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: err = %v, want %q", tc.annotations, err, tc.want)
		}
	}
}

// TestNerdctlPortsOneReading: nerdctl's port list reads the same from its
// annotation and from its network-config.json: one parser.
func TestNerdctlPortsOneReading(t *testing.T) {
	list := `[{"HostPort":8080,"ContainerPort":80,"Protocol":"TCP","HostIP":"0.0.0.0"},` +
		`{"HostPort":5353,"ContainerPort":53,"Protocol":"udp","HostIP":"::"},` +
		`{"HostPort":9090,"ContainerPort":90,"Protocol":"tcp","HostIP":"[::1]"},` +
		`{"HostPort":7070,"ContainerPort":70,"Protocol":"tcp","HostIP":""}]`
	want := []PortMapping{
		{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"},
		{HostIP: netip.IPv6Unspecified(), HostPort: 5353, ContainerPort: 53, Protocol: "udp"},
		{HostIP: netip.IPv6Loopback(), HostPort: 9090, ContainerPort: 90, Protocol: "tcp"},
		{HostPort: 7070, ContainerPort: 70, Protocol: "tcp"},
	}
	fromAnnotation, err := PortsFor(&specs.Spec{Annotations: map[string]string{NerdctlPortsAnnotation: list}})
	if err != nil || !slices.Equal(fromAnnotation, want) {
		t.Errorf("annotation: %v, %v, want %v", fromAnnotation, err, want)
	}
	fromFile, err := ParseNerdctlNetworkConfig([]byte(`{"portMappings":` + list + `}`))
	if err != nil || !slices.Equal(fromFile, want) {
		t.Errorf("network-config.json: %v, %v, want %v", fromFile, err, want)
	}
	for _, bad := range []struct{ entry, want string }{
		{`{"HostPort":0,"ContainerPort":80,"Protocol":"tcp"}`, `invalid port mapping "0:80/tcp": host port 0 is not a port number (1-65535)`},
		{`{"HostPort":80,"ContainerPort":70000,"Protocol":"tcp"}`, `container port 70000 is not a port number`},
		{`{"HostPort":80,"ContainerPort":80,"Protocol":"sctp"}`, `"80:80/sctp": protocol must be tcp or udp`},
		{`{"HostPort":80,"ContainerPort":80,"Protocol":"tcp","HostIP":"x"}`, `"x:80:80/tcp": host IP`},
	} {
		_, aerr := PortsFor(&specs.Spec{Annotations: map[string]string{NerdctlPortsAnnotation: "[" + bad.entry + "]"}})
		_, ferr := ParseNerdctlNetworkConfig([]byte(`{"portMappings":[` + bad.entry + `]}`))
		if aerr == nil || ferr == nil || !strings.Contains(aerr.Error(), bad.want) || !strings.Contains(ferr.Error(), bad.want) {
			t.Errorf("%s: annotation %v, file %v, want both to contain %q", bad.entry, aerr, ferr, bad.want)
		}
	}
}
