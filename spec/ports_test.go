package spec

import (
	"net/netip"
	"reflect"
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
