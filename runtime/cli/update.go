package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/docker/go-units"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/container"
)

// runUpdate changes a container's resource limits: --resources takes a
// runtime-spec LinuxResources JSON file ("-" for stdin, which containerd's
// shims use); single-value flags override it.
func runUpdate(g *globals, args []string) error {
	fs := newFlags("update")
	resources := fs.String("resources", "", "LinuxResources JSON file, - for stdin")
	fs.StringVar(resources, "r", "", "")
	memory := fs.String("memory", "", "memory limit (e.g. 512m)")
	memSwap := fs.String("memory-swap", "", "memory+swap limit, -1 for unlimited")
	memReservation := fs.String("memory-reservation", "", "memory soft limit")
	cpuShares := fs.String("cpu-share", "", "CPU shares (relative weight)")
	cpuQuota := fs.String("cpu-quota", "", "CPU CFS quota in microseconds")
	cpuPeriod := fs.String("cpu-period", "", "CPU CFS period in microseconds")
	cpusetCpus := fs.String("cpuset-cpus", "", "CPUs allowed (e.g. 0-1)")
	cpusetMems := fs.String("cpuset-mems", "", "memory nodes allowed")
	pidsLimit := fs.String("pids-limit", "", "maximum number of processes")
	blkioWeight := fs.String("blkio-weight", "", "block IO weight (10-1000)")
	id, err := parseID(fs, args, "update")
	if err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	r := &specs.LinuxResources{}
	if *resources != "" {
		var in io.Reader = os.Stdin
		if *resources != "-" {
			f, err := os.Open(*resources)
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
		setBytes("memory", *memory, func(n int64) { mem().Limit = &n }),
		setBytes("memory-swap", *memSwap, func(n int64) { mem().Swap = &n }),
		setBytes("memory-reservation", *memReservation, func(n int64) { mem().Reservation = &n }),
		setUint("cpu-share", *cpuShares, func(n uint64) { cpu().Shares = &n }),
		setUint("cpu-period", *cpuPeriod, func(n uint64) { cpu().Period = &n }),
		setUint("blkio-weight", *blkioWeight, func(n uint64) {
			w := uint16(n)
			r.BlockIO = &specs.LinuxBlockIO{Weight: &w}
		}),
	} {
		if err != nil {
			return err
		}
	}
	if *cpuQuota != "" {
		n, err := strconv.ParseInt(*cpuQuota, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid --cpu-quota %q: %w", *cpuQuota, err)
		}
		cpu().Quota = &n
	}
	if *cpusetCpus != "" {
		cpu().Cpus = *cpusetCpus
	}
	if *cpusetMems != "" {
		cpu().Mems = *cpusetMems
	}
	if *pidsLimit != "" {
		n, err := strconv.ParseInt(*pidsLimit, 10, 64)
		if err != nil {
			return fmt.Errorf("invalid --pids-limit %q: %w", *pidsLimit, err)
		}
		r.Pids = &specs.LinuxPids{Limit: &n}
	}
	// Device rules are fixed at create: a resources document sent back
	// from `state` must not re-open /dev access.
	r.Devices = nil
	cg, err := c.LoadCgroup()
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	if err := cg.Update(r); err != nil {
		return fmt.Errorf("update resources of container %s: %w", id, err)
	}
	return nil
}

// runEvents prints the container's stats, once with --stats, else every
// interval along with OOM events, until the container stops.
func runEvents(g *globals, args []string) error {
	fs := newFlags("events")
	once := fs.Bool("stats", false, "print stats once and exit")
	interval := fs.Duration("interval", 5*time.Second, "how often to print stats")
	id, err := parseID(fs, args, "events")
	if err != nil {
		return err
	}
	if *interval <= 0 {
		return fmt.Errorf("events: --interval must be positive")
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	cg, err := c.LoadCgroup()
	if err != nil {
		return fmt.Errorf("container %s: %w", id, err)
	}
	enc := json.NewEncoder(os.Stdout)
	emitStats := func() error {
		s, err := cg.Stats()
		if err != nil {
			return err
		}
		return enc.Encode(struct {
			Type string         `json:"type"`
			ID   string         `json:"id"`
			Data *cgroups.Stats `json:"data"`
		}{"stats", id, s})
	}
	if *once {
		return emitStats()
	}
	ooms, _ := cg.OOMKills()
	poll := time.NewTicker(200 * time.Millisecond)
	defer poll.Stop()
	next := time.Now()
	for c.Status() != container.Stopped {
		if time.Now().After(next) {
			if err := emitStats(); err != nil {
				return err
			}
			next = time.Now().Add(*interval)
		}
		if n, err := cg.OOMKills(); err == nil && n > ooms {
			ooms = n
			if err := enc.Encode(struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			}{"oom", id}); err != nil {
				return err
			}
		}
		<-poll.C
	}
	return nil
}
