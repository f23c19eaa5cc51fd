package cgroups

import (
	"math"
	"reflect"
	"strings"
	"testing"

	systemd "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestExpandSlice(t *testing.T) {
	for in, want := range map[string]string{
		"-.slice":                             "/",
		"system.slice":                        "/system.slice",
		"kubepods-besteffort-pod12_34.slice":  "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12_34.slice",
		"machine-qemu\\x2d1\\x2dvm.slice":     "/machine.slice/machine-qemu\\x2d1\\x2dvm.slice",
		"user-1000.slice":                     "/user.slice/user-1000.slice",
		"kubepods-burstable-podabc-def.slice": "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-podabc.slice/kubepods-burstable-podabc-def.slice",
	} {
		got, err := ExpandSlice(in)
		if err != nil || got != want {
			t.Errorf("ExpandSlice(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"system", ".slice", "a--b.slice", "-a.slice", "a-.slice", "a/b.slice"} {
		if got, err := ExpandSlice(bad); err == nil {
			t.Errorf("ExpandSlice(%q) = %q, want an error", bad, got)
		}
	}
}

func TestParseSystemdPath(t *testing.T) {
	for _, tc := range []struct {
		path, id string
		unit     Unit
		cgroup   string
	}{
		{"", "abc", Unit{"system.slice", "hostnet-abc.scope"}, "/system.slice/hostnet-abc.scope"},
		{"system.slice:docker:abc", "x", Unit{"system.slice", "docker-abc.scope"}, "/system.slice/docker-abc.scope"},
		{":cri-containerd:abc", "x", Unit{"system.slice", "cri-containerd-abc.scope"}, "/system.slice/cri-containerd-abc.scope"},
		{"kubepods-besteffort-pod1.slice:cri-containerd:abc", "x", Unit{"kubepods-besteffort-pod1.slice", "cri-containerd-abc.scope"},
			"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/cri-containerd-abc.scope"},
		{"machine.slice::abc", "x", Unit{"machine.slice", "abc.scope"}, "/machine.slice/abc.scope"},
		{"system.slice:ignored:system-box.slice", "x", Unit{"system.slice", "system-box.slice"}, "/system.slice/system-box.slice"},
	} {
		u, err := ParseSystemdPath(tc.path, tc.id)
		if err != nil || u != tc.unit {
			t.Errorf("ParseSystemdPath(%q) = %+v, %v; want %+v", tc.path, u, err, tc.unit)
			continue
		}
		if p, err := u.Path(); err != nil || p != tc.cgroup {
			t.Errorf("%q: cgroup %q, %v; want %q", tc.path, p, err, tc.cgroup)
		}
	}
	for path, want := range map[string]string{
		"/default/abc":            "slice:prefix:name",
		"a:b":                     "slice:prefix:name",
		"system.slice:p:":         "unit name is empty",
		"system:p:n":              `invalid slice name "system"`,
		"system.slice:p/q:n":      "may not contain '/'",
		"system.slice:p:a-.slice": "empty component",
	} {
		if _, err := ParseSystemdPath(path, "x"); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseSystemdPath(%q) error %v, want it to contain %q", path, err, want)
		}
	}
}

func propMap(t *testing.T, props []systemd.Property) map[string]any {
	t.Helper()
	m := map[string]any{}
	for _, p := range props {
		m[p.Name] = p.Value.Value()
	}
	return m
}

func TestResourceProperties(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	res := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64(64 << 20)},
		CPU:     &specs.LinuxCPU{Shares: u64(512), Quota: i64(25000), Period: u64(100000)},
		Pids:    &specs.LinuxPids{Limit: i64(-1)},
		BlockIO: &specs.LinuxBlockIO{Weight: u16(300)},
	}
	v1, err := resourceProperties(res, false)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"MemoryLimit": uint64(64 << 20), "CPUShares": uint64(512), "CPUQuotaPerSecUSec": uint64(250000),
		"CPUQuotaPeriodUSec": uint64(100000), "TasksMax": uint64(math.MaxUint64), "BlockIOWeight": uint64(300),
	}
	if got := propMap(t, v1); !reflect.DeepEqual(got, want) {
		t.Errorf("v1 properties = %v, want %v", got, want)
	}
	v2, err := resourceProperties(res, true)
	if err != nil {
		t.Fatal(err)
	}
	got := propMap(t, v2)
	if got["MemoryMax"] != uint64(64<<20) || got["CPUWeight"] != uint64(59) || got["BlockIOWeight"] != nil || got["IOWeight"] != uint64(2930) {
		t.Errorf("v2 properties = %v, want MemoryMax, CPUWeight 59 (runc's conversion of 512 shares), IOWeight 2930 and no BlockIOWeight", got)
	}
	// v2 limits systemd would otherwise reset on its next re-apply.
	res.Memory.Reservation, res.Memory.Swap = i64(32<<20), i64(96<<20)
	res.CPU.Cpus, res.CPU.Mems = "0-2,9", "0"
	v2, err = resourceProperties(res, true)
	if err != nil {
		t.Fatal(err)
	}
	got = propMap(t, v2)
	for name, want := range map[string]any{
		"MemoryLow": uint64(32 << 20), "MemorySwapMax": uint64(32 << 20),
		"AllowedCPUs": []byte{0x07, 0x02}, "AllowedMemoryNodes": []byte{0x01},
	} {
		if !reflect.DeepEqual(got[name], want) {
			t.Errorf("v2 %s = %v, want %v", name, got[name], want)
		}
	}
	if v1, _ := resourceProperties(res, false); propMap(t, v1)["AllowedCPUs"] != nil {
		t.Error("v1 properties carry AllowedCPUs, which systemd does not manage there")
	}
	if _, err := listToBits("3-1"); err == nil {
		t.Error(`listToBits("3-1") succeeded`)
	}
	// systemd keeps the quota in whole percent: never round down.
	if q := quotaPerSec(1234, u64(100000)); q != 20000 {
		t.Errorf("quotaPerSec(1234/100000) = %d, want 20000", q)
	}
}

func TestDeviceProperties(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	rule := func(allow bool, typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Major: major, Minor: minor, Access: access}
	}
	for _, tc := range []struct {
		name   string
		rules  []specs.LinuxDeviceCgroup
		policy string
		allow  []deviceAllow
		err    string
	}{
		{"deny all then allow some", []specs.LinuxDeviceCgroup{
			rule(false, "", nil, nil, "rwm"),
			rule(true, "c", i64(1), i64(3), "rwm"),
			rule(true, "c", nil, nil, "m"),
			rule(true, "c", i64(136), nil, "rw"),
		}, "strict", []deviceAllow{{"/dev/char/1:3", "rwm"}, {"char-*", "m"}, {"char-pts", "rw"}}, ""},
		{"privileged", []specs.LinuxDeviceCgroup{rule(false, "a", nil, nil, "rwm"), rule(true, "a", nil, nil, "rwm")}, "auto", []deviceAllow{}, ""},
		{"later deny takes access back", []specs.LinuxDeviceCgroup{
			rule(false, "a", nil, nil, ""),
			rule(true, "b", i64(8), i64(0), "rwm"),
			rule(false, "b", i64(8), nil, "w"),
		}, "strict", []deviceAllow{{"/dev/block/8:0", "rm"}}, ""},
		{"deny after allow all", []specs.LinuxDeviceCgroup{rule(true, "a", nil, nil, "rwm"), rule(false, "c", i64(1), i64(3), "rwm")},
			"", nil, "cannot deny single devices after allowing all"},
		{"no rules is deny all", nil, "strict", []deviceAllow{}, ""},
	} {
		props, err := deviceProperties(tc.rules)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		got := propMap(t, props)
		if got["DevicePolicy"] != tc.policy || !reflect.DeepEqual(got["DeviceAllow"], tc.allow) {
			t.Errorf("%s: DevicePolicy=%v DeviceAllow=%v, want %s %v", tc.name, got["DevicePolicy"], got["DeviceAllow"], tc.policy, tc.allow)
		}
	}
}

// The unified map's limits that systemd manages become unit properties, as
// runc makes them, so that systemd does not reset them.
func TestUnifiedProperties(t *testing.T) {
	props, err := resourceProperties(&specs.LinuxResources{Unified: map[string]string{
		"memory.high": "60000000", "pids.max": "max", "cpu.weight": "50", "io.max": "8:0 rbps=1",
	}}, true)
	if err != nil {
		t.Fatal(err)
	}
	got := propMap(t, props)
	want := map[string]any{"MemoryHigh": uint64(60000000), "TasksMax": uint64(math.MaxUint64), "CPUWeight": uint64(50)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("properties = %v, want %v", got, want)
	}
	for _, bad := range []map[string]string{{"../memory.high": "1"}, {"memoryhigh": "1"}, {"memory.high": "lots"}} {
		if _, err := resourceProperties(&specs.LinuxResources{Unified: bad}, true); err == nil {
			t.Errorf("unified %v accepted", bad)
		}
	}
}
