package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// runUpdate changes a container's resource limits: --resources takes a
// runtime-spec LinuxResources JSON file ("-" for stdin, which containerd's
// shims use); single-value flags override it.
func runUpdate(g *globals, args []string) error {
	f := newFlags("update")
	var resources, memory, memSwap, memReservation, cpuShares, cpuQuota, cpuPeriod, cpusetCpus, cpusetMems, pidsLimit, blkioWeight string
	f.stringVar(&resources, "resources, r", "path to the file containing the resources to update or '-' to read from the standard input; the options below override its values")
	f.stringVar(&blkioWeight, "blkio-weight", "Specifies per cgroup weight, range is from 10 to 1000")
	f.stringVar(&cpuPeriod, "cpu-period", "CPU CFS period to be used for hardcapping (in usecs). 0 to use system default")
	f.stringVar(&cpuQuota, "cpu-quota", "CPU CFS hardcap limit (in usecs). Allowed cpu time in a given period")
	f.stringVar(&cpuShares, "cpu-share", "CPU shares (relative weight vs. other containers)")
	f.stringVar(&cpusetCpus, "cpuset-cpus", "CPU(s) to use")
	f.stringVar(&cpusetMems, "cpuset-mems", "Memory node(s) to use")
	f.stringVar(&memory, "memory", "Memory limit (in bytes)")
	f.stringVar(&memReservation, "memory-reservation", "Memory reservation or soft_limit (in bytes)")
	f.stringVar(&memSwap, "memory-swap", "Total memory usage (memory + swap); set '-1' to enable unlimited swap")
	f.stringVar(&pidsLimit, "pids-limit", "Maximum number of pids allowed in the container")
	pos, err := f.parse(args, exactly(1))
	if err != nil {
		return err
	}
	id := pos[0]
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	r := &specs.LinuxResources{}
	if resources != "" {
		var in io.Reader = os.Stdin
		if resources != "-" {
			f, err := os.Open(resources)
			if err != nil {
				return fmt.Errorf("open resources file: %w", err)
			}
			defer f.Close()
			in = f
		}
		if err := json.NewDecoder(in).Decode(r); err != nil {
			return fmt.Errorf("decode resources: %w", err)
		}
	}
	mem := func() *specs.LinuxMemory {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		return r.Memory
	}
	cpu := func() *specs.LinuxCPU {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		return r.CPU
	}
	setBytes := func(flag, v string, dst func(int64)) error {
		if v == "" {
			return nil
		}
		if v == "-1" {
			dst(-1)
			return nil
		}
		n, err := units.RAMInBytes(v)
		if err != nil {
			return fmt.Errorf("invalid --%s %q: %w", flag, v, err)
		}
		dst(n)
		return nil
	}
	setUint := func(flag, v string, dst func(uint64)) error {
		if v == "" {
			return nil
		}
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid --%s %q: %w", flag, v, err)
		}
		dst(n)
		return nil
	}
	for _, err := range []error{
		setBytes("memory", memory, func(n int64) { mem().Limit = &n }),
		setBytes("memory-swap", memSwap, func(n int64) { mem().Swap = &n }),
		setBytes("memory-reservation", memReservation, func(n int64) { mem().Reservation = &n }),
		setUint("cpu-share", cpuShares, func(n uint64) { cpu().Shares = &n }),
		setUint("cpu-period", cpuPeriod, func(n uint64) { cpu().Period = &n }),
		setUint("blkio-weight", blkioWeight, func(n uint64) {
			w := uint16(n)
			r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}),
	} {
		if err != nil {
			return err
		}
	}
	if cpuQuota != "" {
		n, err := strconv.ParseInt(cpuQuota, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid --cpu-quota %q: %w", cpuQuota, err)
		}
		cpu().Quota = &n
	}
	if cpusetCpus != "" {
		cpu().Cpus = cpusetCpus
	}
	if cpusetMems != "" {
		cpu().Mems = cpusetMems
	}
	if pidsLimit != "" {
		n, err := strconv.ParseInt(pidsLimit, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid --pids-limit %q: %w", pidsLimit, err)
		}
		r.Pids = &specs.LinuxPids{Limit: &n}
	}
	return c.Update(r)
}
