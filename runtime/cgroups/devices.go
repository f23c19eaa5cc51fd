package cgroups

import (
	"fmt"

	ocgroups "github.com/opencontainers/cgroups"
	// Registers runc's device code as ocgroups.DevicesSetV1 and
	// DevicesSetV2.
	_ "github.com/opencontainers/cgroups/devices"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// defaultDevices are the rules runc appends to every container's own
// (libcontainer/specconv.AllowedDevices in runc 1.5.2), in runc's order.
// They come after the spec's rules, so a spec cannot take them away: mknod
// of any device (opening one is what the cgroup guards), the standard
// character devices, ptys and /dev/net/tun.
var defaultDevices = func() []specs.LinuxDeviceCgroup {
	i64 := func(v int64) *int64 { return &v }
	allow := func(typ string, major, minor *int64, access string) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: access}
	}
	return []specs.LinuxDeviceCgroup{
		allow("c", nil, nil, "m"),
		allow("b", nil, nil, "m"),
		allow("c", i64(1), i64(3), "rwm"),    // null
		allow("c", i64(1), i64(8), "rwm"),    // random
		allow("c", i64(1), i64(7), "rwm"),    // full
		allow("c", i64(5), i64(0), "rwm"),    // tty
		allow("c", i64(1), i64(5), "rwm"),    // zero
		allow("c", i64(1), i64(9), "rwm"),    // urandom
		allow("c", i64(136), nil, "rwm"),     // pts
		allow("c", i64(5), i64(2), "rwm"),    // ptmx
		allow("c", i64(10), i64(200), "rwm"), // net/tun
	}
}()

// withDefaultDevices returns res with runc's default rules after its own.
func withDefaultDevices(res *specs.LinuxResources) *specs.LinuxResources {
	out := specs.LinuxResources{}
	if res != nil {
		out = *res
	}
	out.Devices = append(append([]specs.LinuxDeviceCgroup{}, out.Devices...), defaultDevices...)
	return &out
}

// checkDevices refuses what runc refuses in a spec's device rules.
func checkDevices(rules []specs.LinuxDeviceCgroup) error {
	_, err := deviceRules(rules)
	return err
}

// deviceRules converts the spec's rules to runc's, with runc's defaults
// for what the spec leaves out: every type, every major and minor. Each
// cgroup version writes them through runc's device code.
func deviceRules(rules []specs.LinuxDeviceCgroup) ([]*devconfig.Rule, error) {
	out := make([]*devconfig.Rule, 0, len(rules))
	for i, r := range rules {
		rule := &devconfig.Rule{
			Type:        devconfig.WildcardDevice,
			Major:       devconfig.Wildcard,
			Minor:       devconfig.Wildcard,
			Permissions: devconfig.Permissions(r.Access),
			Allow:       r.Allow,
		}
		switch r.Type {
		case "", "a":
		case "b":
			rule.Type = devconfig.BlockDevice
		case "c":
			rule.Type = devconfig.CharDevice
		default:
			return nil, fmt.Errorf("device rule %d: invalid cgroup device type %q", i, r.Type)
		}
		if r.Major != nil {
			rule.Major = *r.Major
		}
		if r.Minor != nil {
			rule.Minor = *r.Minor
		}
		// Other letters than r, w and m are dropped and the rest put in
		// order by runc's emulator, which every rule goes through
		// (DevicesSetV1, DevicesSetV2): "rwa" grants "rw" as with runc.
		if r.Access == "" {
			return nil, fmt.Errorf("device access at %d field cannot be empty", i)
		}
		out = append(out, rule)
	}
	return out, nil
}

// setDeviceFilter attaches to a cgroup v2 directory the eBPF program that
// enforces rules, and detaches the one set before, so that the cgroup is
// governed by exactly these rules. It is runc's own code
// (opencontainers/cgroups/devices): the rules go through the cgroup v1
// emulator first, so that v2 grants exactly what v1 would, and an existing
// program is replaced (BPF_F_REPLACE), not stacked. containerd/cgroups/v3's
// filter is a port of an older version of it that does neither, and matches
// a rule that grants any one of the accesses asked for (an "r" rule lets a
// device be opened read-write).
func setDeviceFilter(dir string, rules []specs.LinuxDeviceCgroup) error {
	converted, err := deviceRules(rules)
	if err != nil {
		return err
	}
	if err := ocgroups.DevicesSetV2(dir, &ocgroups.Resources{Devices: converted}); err != nil {
		return fmt.Errorf("set device filter of cgroup %s: %w", dir, err)
	}
	return nil
}
