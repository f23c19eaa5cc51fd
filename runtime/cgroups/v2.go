package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup2"
	ocgroups "github.com/opencontainers/cgroups"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// What runc 1.5.2 does on cgroup v2 (opencontainers/cgroups/fs2) that
// containerd/cgroups/v3 does not: every controller enabled down the path,
// memory and swap as runc converts them, a pids limit of 0, cpu idle and
// burst, and the spec's unified map.

const v2Root = "/sys/fs/cgroup"

// errV1Unified is runc's refusal of a unified map on a v1 host.
var errV1Unified = errors.New("invalid configuration: cannot use unified on cgroup v1")

// v2Resources converts the spec's limits for containerd/cgroups. Device
// rules (setDeviceFilter), memory (setV2Memory) and the unified map
// (setV2Unified) are left out: they are set as runc sets them.
func v2Resources(res *specs.LinuxResources) *cgroup2.Resources {
	if res == nil {
		return &cgroup2.Resources{}
	}
	r := cgroup2.ToResources(res)
	r.Devices = nil
	r.Memory = nil
	if res.Pids != nil && res.Pids.Limit != nil && *res.Pids.Limit == 0 {
		// runc's 0: "1", as systemd takes it (containerd/cgroups
		// writes nothing and leaves no limit).
		r.Pids = &cgroup2.Pids{Max: 1}
	}
	if res.CPU != nil && res.CPU.Shares != nil {
		// runc's conversion, which maps the default 1024 shares to the
		// default weight 100 (containerd/cgroups' linear one gives 39).
		w := ocgroups.ConvertCPUSharesToCgroupV2Value(*res.CPU.Shares)
		r.CPU.Weight = &w
	}
	return r
}

// createV2 makes the cgroup and its missing parents, enabling in each
// parent every controller the root has, as runc does: a container made
// without limits can then be given some with update, and its usage is
// counted from the start. A controller a parent cannot enable (its
// parent lacks it) is skipped; writing a limit for it fails later.
func createV2(path string) error {
	avail, err := os.ReadFile(filepath.Join(v2Root, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read available cgroup controllers: %w", err)
	}
	ctrls := strings.Fields(string(avail))
	dir := v2Root
	parts := strings.Split(strings.Trim(filepath.Clean(path), "/"), "/")
	for _, part := range parts {
		if len(ctrls) > 0 {
			enableControllers(dir, ctrls)
		}
		dir = filepath.Join(dir, part)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("create cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// enableControllers writes "+ctrl ..." to dir's cgroup.subtree_control,
// one at a time if all at once is refused.
func enableControllers(dir string, ctrls []string) {
	file := filepath.Join(dir, "cgroup.subtree_control")
	if os.WriteFile(file, []byte("+"+strings.Join(ctrls, " +")), 0) == nil { //nolint:gosec // dir is a cleaned absolute path under /sys/fs/cgroup (Resolve)
		return
	}
	for _, c := range ctrls {
		_ = os.WriteFile(file, []byte("+"+c), 0) //nolint:gosec // dir is under /sys/fs/cgroup, as above
	}
}

// setV2Memory writes memory.swap.max, memory.max and memory.low as runc
// does: swap first (it may have to shrink before memory.max can), the
// spec's memory+swap converted to swap alone, -1 as "max". On update,
// a new limit without a new swap keeps the memory+swap total the
// container had, as runc's does from its saved config: here it is read
// back from the cgroup.
func setV2Memory(dir string, m *specs.LinuxMemory, update bool) error {
	if m == nil || (m.Limit == nil && m.Swap == nil && m.Reservation == nil) {
		return nil
	}
	var limit, swap int64
	if m.Limit != nil {
		limit = *m.Limit
	}
	if m.Swap != nil {
		swap = *m.Swap
	}
	switch {
	case update && m.Limit != nil && m.Swap == nil && limit == -1:
		swap = -1 // runc update: unlimited memory takes swap with it
	case update && m.Limit != nil && m.Swap == nil:
		total, err := memSwapTotal(dir)
		if err != nil {
			return err
		}
		swap = total
	case update && m.Limit == nil && m.Swap != nil:
		cur, err := readLimit(dir, "memory.max")
		if err != nil {
			return err
		}
		limit = cur
	}
	swapMax, err := ocgroups.ConvertMemorySwapToCgroupV2Value(swap, limit)
	if err != nil {
		return err
	}
	swapStr := limitString(swapMax)
	if swapStr == "" && swap > 0 {
		swapStr = "0" // memory+swap equal to memory: no swap
	}
	if swapStr != "" {
		if err := writeV2(dir, "memory.swap.max", swapStr); err != nil {
			// Without swap accounting there is nothing to limit.
			if !errors.Is(err, os.ErrNotExist) || (swapStr != "max" && swapStr != "0") {
				return err
			}
		}
	}
	if m.Limit != nil {
		if s := limitString(limit); s != "" {
			if err := writeV2(dir, "memory.max", s); err != nil {
				return err
			}
		}
	}
	if m.Reservation != nil {
		if s := limitString(*m.Reservation); s != "" {
			if err := writeV2(dir, "memory.low", s); err != nil {
				return err
			}
		}
	}
	return nil
}

// memSwapTotal is the memory+swap limit the cgroup has now, as the spec
// states it: 0 when swap is unlimited and so not set, -1 never (runc
// keeps "max" then too).
func memSwapTotal(dir string) (int64, error) {
	swap, err := readLimit(dir, "memory.swap.max")
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil || swap == -1 {
		return 0, err
	}
	mem, err := readLimit(dir, "memory.max")
	if err != nil {
		return 0, err
	}
	if mem == -1 {
		return swap, nil
	}
	return mem + swap, nil
}

// readLimit reads a limit file, "max" as -1.
func readLimit(dir, name string) (int64, error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", filepath.Join(dir, name), err)
	}
	return v, nil
}

// limitString is a limit as cgroup v2 files take it: "" for unset (0),
// "max" for -1.
func limitString(v int64) string {
	switch v {
	case 0:
		return ""
	case -1:
		return "max"
	default:
		return strconv.FormatInt(v, 10)
	}
}

func writeV2(dir, name, value string) error {
	if err := os.WriteFile(filepath.Join(dir, name), []byte(value), 0); err != nil {
		return fmt.Errorf("write %q to %s: %w", value, filepath.Join(dir, name), err)
	}
	return nil
}

// setV2Unified writes the spec's unified map, file name to value, with
// runc's checks and errors.
func setV2Unified(dir string, unified map[string]string) error {
	for k, v := range unified {
		if strings.Contains(k, "/") {
			return fmt.Errorf("unified resource %q must be a file name (no slashes)", k)
		}
		err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0)
		if err == nil {
			continue
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, os.ErrNotExist) {
			c, _, ok := strings.Cut(k, ".")
			if !ok {
				return fmt.Errorf("unified resource %q must be in the form CONTROLLER.PARAMETER", k)
			}
			if c != "cgroup" && !hasController(dir, c) {
				return fmt.Errorf("unified resource %q can't be set: controller %q not available", k, c)
			}
		}
		return fmt.Errorf("unable to set unified resource %q: %w", k, err)
	}
	return nil
}

func hasController(dir, name string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return false
	}
	for _, c := range strings.Fields(string(data)) {
		if c == name {
			return true
		}
	}
	return false
}

// setV2CPU writes cpu.idle and cpu.max.burst, which containerd/cgroups
// does not: after cpu.max, which a burst may not exceed.
func setV2CPU(dir string, c *specs.LinuxCPU) error {
	if c == nil {
		return nil
	}
	if c.Idle != nil {
		if err := writeV2(dir, "cpu.idle", strconv.FormatInt(*c.Idle, 10)); err != nil {
			return err
		}
	}
	if c.Burst != nil {
		if err := writeV2(dir, "cpu.max.burst", strconv.FormatUint(*c.Burst, 10)); err != nil {
			return err
		}
	}
	return nil
}

// setV2 applies what containerd/cgroups does not, after it: cpu idle and
// burst, memory, the device filter (at create only: runc's update leaves
// it) and the unified map, in runc's order.
func setV2(dir string, res *specs.LinuxResources, update bool) error {
	if res == nil {
		return nil
	}
	if err := setV2CPU(dir, res.CPU); err != nil {
		return err
	}
	if err := setV2Memory(dir, res.Memory, update); err != nil {
		return err
	}
	if !update {
		if err := setDeviceFilter(dir, res.Devices); err != nil {
			return err
		}
	}
	return setV2Unified(dir, res.Unified)
}
