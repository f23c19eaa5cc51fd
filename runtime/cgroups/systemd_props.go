package cgroups

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	systemd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	ocgroups "github.com/opencontainers/cgroups"
	devconfig "github.com/opencontainers/cgroups/devices/config"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The unit properties mirror the spec's resources because systemd rewrites
// a unit's cgroup files from its own properties whenever it re-applies them
// (daemon-reload, a property change): limits written only to cgroupfs would
// fall back to systemd's defaults, and an open device policy would undo the
// spec's device rules.

func prop(name string, v any) systemd.Property {
	return systemd.Property{Name: name, Value: dbus.MakeVariant(v)}
}

// unitProperties are the properties of a new unit for the container.
func unitProperties(u Unit, pid int, res *specs.LinuxResources, v2 bool) ([]systemd.Property, error) {
	props := []systemd.Property{
		systemd.PropDescription("hostnet container " + u.Name),
		prop("DefaultDependencies", false),
		prop("MemoryAccounting", true),
		prop("CPUAccounting", true),
		prop("TasksAccounting", true),
	}
	if v2 {
		props = append(props, prop("IOAccounting", true))
	} else {
		props = append(props, prop("BlockIOAccounting", true))
	}
	if u.IsSlice() {
		// A slice holds no processes itself: the pid joins through cgroupfs.
		props = append(props, systemd.PropWants(u.Slice))
	} else {
		// Delegate: the container may manage its own sub-cgroups, and
		// systemd leaves what is below the scope alone.
		props = append(props, systemd.PropSlice(u.Slice), prop("Delegate", true), systemd.PropPids(uint32(pid)))
	}
	rp, err := resourceProperties(res, v2)
	if err != nil {
		return nil, err
	}
	return append(props, rp...), nil
}

// resourceProperties converts the spec's limits into systemd's names for
// them. Limits systemd has no property for are only written to cgroupfs,
// which systemd does not touch for them.
func resourceProperties(res *specs.LinuxResources, v2 bool) ([]systemd.Property, error) {
	var props []systemd.Property
	if res == nil {
		return props, nil
	}
	var err error
	if v2 {
		props, err = v2Properties(res)
	} else {
		props = v1Properties(res)
	}
	if err != nil {
		return nil, err
	}
	if c := res.CPU; c != nil {
		if c.Quota != nil && *c.Quota != 0 {
			props = append(props, prop("CPUQuotaPerSecUSec", quotaPerSec(*c.Quota, c.Period)))
		}
		if c.Period != nil && *c.Period != 0 {
			props = append(props, prop("CPUQuotaPeriodUSec", *c.Period))
		}
	}
	if p := res.Pids; p != nil && p.Limit != nil {
		n := *p.Limit
		if n == 0 {
			n = 1 // systemd refuses 0; runc asks for 1 (and writes 1 to pids.max)
		}
		props = append(props, prop("TasksMax", limitValue(n)))
	}
	if res.Devices != nil {
		dp, err := deviceProperties(res.Devices)
		if err != nil {
			return nil, err
		}
		props = append(props, dp...)
	}
	return props, nil
}

// v1Properties: on v1 systemd manages memory, cpu, blkio and pids only.
func v1Properties(res *specs.LinuxResources) []systemd.Property {
	var props []systemd.Property
	if m := res.Memory; m != nil && m.Limit != nil {
		props = append(props, prop("MemoryLimit", limitValue(*m.Limit)))
	}
	if c := res.CPU; c != nil && c.Shares != nil && *c.Shares != 0 {
		props = append(props, prop("CPUShares", *c.Shares))
	}
	if b := res.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 {
		props = append(props, prop("BlockIOWeight", uint64(*b.Weight)))
	}
	return props
}

// v2Properties: on v2 a delegated unit has every controller enabled and
// systemd rewrites each from its properties, so each limit it knows must
// be one (the low and swap limits, cpusets, IO weight included).
func v2Properties(res *specs.LinuxResources) ([]systemd.Property, error) {
	var props []systemd.Property
	if m := res.Memory; m != nil {
		if m.Limit != nil {
			props = append(props, prop("MemoryMax", limitValue(*m.Limit)))
		}
		if m.Reservation != nil && *m.Reservation != 0 {
			props = append(props, prop("MemoryLow", limitValue(*m.Reservation)))
		}
		// The spec's swap is memory+swap; systemd's is swap alone.
		if m.Swap != nil {
			switch {
			case *m.Swap < 0:
				props = append(props, prop("MemorySwapMax", uint64(math.MaxUint64)))
			case m.Limit != nil && *m.Limit > 0 && *m.Swap >= *m.Limit:
				props = append(props, prop("MemorySwapMax", uint64(*m.Swap-*m.Limit)))
			}
		}
	}
	if c := res.CPU; c != nil {
		if c.Shares != nil && *c.Shares != 0 {
			props = append(props, prop("CPUWeight", sharesToWeight(*c.Shares)))
		}
		for name, list := range map[string]string{"AllowedCPUs": c.Cpus, "AllowedMemoryNodes": c.Mems} {
			if list == "" {
				continue
			}
			bits, err := listToBits(list)
			if err != nil {
				return nil, fmt.Errorf("cpuset %q: %w", list, err)
			}
			props = append(props, prop(name, bits))
		}
	}
	if b := res.BlockIO; b != nil && b.Weight != nil && *b.Weight != 0 {
		// blkio weights are 10..1000, io weights 1..10000.
		props = append(props, prop("IOWeight", 1+(uint64(*b.Weight)-10)*9999/990))
	}
	up, err := unifiedProperties(res.Unified)
	if err != nil {
		return nil, err
	}
	return append(props, up...), nil
}

// unifiedProperties are the unified map's entries that systemd has a
// property for, as runc converts them; systemd would reset those files to
// its own values otherwise. The rest is only written to cgroupfs.
func unifiedProperties(unified map[string]string) ([]systemd.Property, error) {
	var props []systemd.Property
	number := func(k, v string) (uint64, error) {
		if v == "max" {
			return math.MaxUint64, nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("unified resource %q value conversion error: %w", k, err)
		}
		return n, nil
	}
	names := map[string]string{
		"memory.high": "MemoryHigh", "memory.low": "MemoryLow", "memory.min": "MemoryMin",
		"memory.max": "MemoryMax", "memory.swap.max": "MemorySwapMax", "pids.max": "TasksMax",
		"cpu.weight": "CPUWeight", "cpuset.cpus": "AllowedCPUs", "cpuset.mems": "AllowedMemoryNodes",
	}
	for k, v := range unified {
		if strings.Contains(k, "/") {
			return nil, fmt.Errorf("unified resource %q must be a file name (no slashes)", k)
		}
		if strings.IndexByte(k, '.') <= 0 {
			return nil, fmt.Errorf("unified resource %q must be in the form CONTROLLER.PARAMETER", k)
		}
		v = strings.TrimSpace(v)
		name, ok := names[k]
		switch {
		case !ok:
		case k == "cpuset.cpus" || k == "cpuset.mems":
			bits, err := listToBits(v)
			if err != nil {
				return nil, fmt.Errorf("unified resource %q=%q conversion error: %w", k, v, err)
			}
			props = append(props, prop(name, bits))
		default:
			n, err := number(k, v)
			if err != nil {
				return nil, err
			}
			if k == "pids.max" && n == 0 {
				n = 1 // systemd refuses a TasksMax of 0
			}
			props = append(props, prop(name, n))
		}
	}
	return props, nil
}

// listToBits turns a cpuset list such as "0-3,8" into the bitmask systemd
// takes for AllowedCPUs: bit n of byte n/8 for CPU n.
func listToBits(list string) ([]byte, error) {
	var bits []byte
	for _, part := range strings.Split(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := strconv.Atoi(lo)
		if err != nil {
			return nil, err
		}
		last := first
		if isRange {
			if last, err = strconv.Atoi(hi); err != nil {
				return nil, err
			}
		}
		if first < 0 || last < first || last > 1<<16 {
			return nil, fmt.Errorf("bad range %q", part)
		}
		for n := first; n <= last; n++ {
			for len(bits) <= n/8 {
				bits = append(bits, 0)
			}
			bits[n/8] |= 1 << (n % 8)
		}
	}
	return bits, nil
}

// limitValue maps the spec's -1 (unlimited) to systemd's infinity.
func limitValue(v int64) uint64 {
	if v < 0 {
		return math.MaxUint64
	}
	return uint64(v)
}

// quotaPerSec is the CFS quota as systemd states it, microseconds of CPU per
// second. systemd keeps it in whole percent, so round up to 10ms as runc
// does rather than give less CPU than asked.
func quotaPerSec(quota int64, period *uint64) uint64 {
	if quota < 0 {
		return math.MaxUint64
	}
	p := uint64(100000)
	if period != nil && *period != 0 {
		p = *period
	}
	perSec := uint64(quota) * 1000000 / p
	if perSec%10000 != 0 {
		perSec = (perSec/10000 + 1) * 10000
	}
	return perSec
}

// sharesToWeight is runc's v1 shares to v2 weight conversion: [2, 262144]
// onto [1, 10000], the default 1024 onto the default 100.
func sharesToWeight(shares uint64) uint64 {
	return ocgroups.ConvertCPUSharesToCgroupV2Value(shares)
}

// deviceAllow is one entry of systemd's DeviceAllow, D-Bus type (ss).
type deviceAllow struct {
	Path   string
	Access string
}

// deviceProperties turns the spec's device rules, applied in order, into a
// DevicePolicy and DeviceAllow list. systemd only knows allow lists: rules
// that end in "allow everything but ..." cannot be expressed and are
// refused instead of being widened to "allow everything".
func deviceProperties(rules []specs.LinuxDeviceCgroup) ([]systemd.Property, error) {
	allowAll := false
	var allow []specs.LinuxDeviceCgroup
	for _, r := range rules {
		if r.Type == "" {
			r.Type = "a"
		}
		if r.Access == "" {
			r.Access = "rwm"
		}
		// As runc's emulator reads it: r, w and m, in that order.
		if r.Access = string(devconfig.Permissions(r.Access).Union("")); r.Access == "" {
			continue
		}
		everything := r.Type == "a" && r.Major == nil && r.Minor == nil && fullAccess(r.Access)
		switch {
		case r.Allow && everything:
			allowAll, allow = true, nil
		case r.Allow:
			if !allowAll {
				allow = append(allow, r)
			}
		case everything:
			allowAll, allow = false, nil
		case allowAll:
			return nil, fmt.Errorf("device rule deny %s: the systemd cgroup driver cannot deny single devices after allowing all", ruleString(r))
		default:
			allow = removeDenied(allow, r)
		}
	}
	if allowAll {
		return []systemd.Property{prop("DevicePolicy", "auto"), prop("DeviceAllow", []deviceAllow{})}, nil
	}
	names, err := deviceNames()
	if err != nil {
		return nil, err
	}
	entries := []deviceAllow{}
	for _, r := range allow {
		entries = append(entries, allowEntries(r, names)...)
	}
	return []systemd.Property{prop("DevicePolicy", "strict"), prop("DeviceAllow", entries)}, nil
}

func fullAccess(access string) bool {
	return strings.Contains(access, "r") && strings.Contains(access, "w") && strings.Contains(access, "m")
}

// removeDenied takes the denied access back from the allow rules the deny
// covers, dropping rules left with none.
func removeDenied(allow []specs.LinuxDeviceCgroup, deny specs.LinuxDeviceCgroup) []specs.LinuxDeviceCgroup {
	var out []specs.LinuxDeviceCgroup
	for _, a := range allow {
		covers := (deny.Type == "a" || deny.Type == a.Type) &&
			(deny.Major == nil || (a.Major != nil && *a.Major == *deny.Major)) &&
			(deny.Minor == nil || (a.Minor != nil && *a.Minor == *deny.Minor))
		if covers {
			a.Access = strings.Map(func(c rune) rune {
				if strings.ContainsRune(deny.Access, c) {
					return -1
				}
				return c
			}, a.Access)
		}
		if a.Access != "" {
			out = append(out, a)
		}
	}
	return out
}

// allowEntries names devices the way DeviceAllow takes them:
// /dev/char/MAJOR:MINOR for one device, char-NAME for a whole major (its
// name in /proc/devices), char-* for every device of a type. A rule that
// names no type covers both.
func allowEntries(r specs.LinuxDeviceCgroup, names map[string]string) []deviceAllow {
	kinds := map[string][]string{"c": {"char"}, "b": {"block"}, "a": {"char", "block"}}[r.Type]
	var out []deviceAllow
	for _, kind := range kinds {
		switch {
		case r.Major == nil:
			out = append(out, deviceAllow{kind + "-*", r.Access})
		case r.Minor == nil:
			// A major without a name in /proc/devices has no device
			// yet; cgroupfs still carries the rule.
			if name, ok := names[kind[:1]+strconv.FormatInt(*r.Major, 10)]; ok {
				out = append(out, deviceAllow{kind + "-" + name, r.Access})
			}
		default:
			out = append(out, deviceAllow{fmt.Sprintf("/dev/%s/%d:%d", kind, *r.Major, *r.Minor), r.Access})
		}
	}
	return out
}

// deviceNames reads /proc/devices into "c136" -> "pts".
func deviceNames() (map[string]string, error) {
	f, err := os.Open("/proc/devices")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names := map[string]string{}
	typ := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch line {
		case "Character devices:":
			typ = "c"
		case "Block devices:":
			typ = "b"
		default:
			if f := strings.Fields(line); len(f) == 2 && typ != "" {
				names[typ+f[0]] = f[1]
			}
		}
	}
	return names, sc.Err()
}

func ruleString(r specs.LinuxDeviceCgroup) string {
	n := func(p *int64) string {
		if p == nil {
			return "*"
		}
		return strconv.FormatInt(*p, 10)
	}
	return fmt.Sprintf("%s %s:%s %s", r.Type, n(r.Major), n(r.Minor), r.Access)
}
