// Package cgroups places a container in its control group and tears it down,
// on cgroup v1 (this includes hybrid hosts) and v2, through
// containerd/cgroups/v3. Only the cgroupfs driver is implemented.
package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/cgroups/v3"
	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Manager controls one container's cgroup.
type Manager interface {
	// Add moves a process into the cgroup.
	Add(pid int) error
	// Pids lists every process in the cgroup and its children.
	Pids() ([]int, error)
	// Freeze and Thaw pause and resume every process in the cgroup.
	Freeze() error
	Thaw() error
	// Frozen reports whether the cgroup is paused.
	Frozen() bool
	// Update applies new resource limits.
	Update(res *specs.LinuxResources) error
	// Stats reads the cgroup's usage counters.
	Stats() (*Stats, error)
	// OOMKills counts the OOM kills in the cgroup so far.
	OOMKills() (uint64, error)
	// Delete kills what is left in the cgroup and removes it.
	Delete() error
	// MountPaths maps each v1 hierarchy name, or "" on v2, to the cgroup's
	// directory on the host.
	MountPaths() map[string]string
}

// ErrNotExist is returned by Load for a cgroup that is already gone.
var ErrNotExist = errors.New("cgroup does not exist")

// DefaultPath is the cgroup runc uses when the spec names none.
func DefaultPath(id string) string { return "/" + id }

// ValidatePath rejects systemd-style "slice:prefix:name" paths, which need
// the systemd driver, and relative paths.
func ValidatePath(p string) error {
	if strings.Contains(p, ":") {
		return fmt.Errorf("cgroupsPath %q looks like a systemd cgroup path, but the systemd cgroup driver is not supported", p)
	}
	if !strings.HasPrefix(p, "/") {
		return fmt.Errorf("cgroupsPath %q must be absolute", p)
	}
	return nil
}

// New creates the cgroup at path and applies resources. The default device
// nodes are always allowed, whatever the spec's device rules deny.
func New(path string, res *specs.LinuxResources) (Manager, error) {
	if err := ValidatePath(path); err != nil {
		return nil, err
	}
	res = withDefaultDevices(res)
	// A limit the kernel refuses fails creation half-way, with directories
	// made in some hierarchies: remember what existed to remove the rest.
	existed := existingDirs(path)
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.NewManager("/sys/fs/cgroup", path, cgroup2.ToResources(res))
		if err != nil {
			removeCreated(existed)
			return nil, fmt.Errorf("create cgroup %s: %w", path, err)
		}
		return &v2{m: m, path: path}, nil
	}
	cg, err := cgroup1.New(cgroup1.StaticPath(path), res)
	if err != nil {
		removeCreated(existed)
		return nil, fmt.Errorf("create cgroup %s: %w", path, err)
	}
	return &v1{cg: cg, path: path}, nil
}

// Load opens an existing cgroup.
func Load(path string) (Manager, error) {
	if cgroups.Mode() == cgroups.Unified {
		m, err := cgroup2.Load(path)
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", path, err)
		}
		if _, err := m.Procs(false); err != nil {
			return nil, ErrNotExist
		}
		return &v2{m: m, path: path}, nil
	}
	cg, err := cgroup1.Load(cgroup1.StaticPath(path))
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", path, err)
	}
	return &v1{cg: cg, path: path}, nil
}

// existingDirs maps the directory of path and of each of its parents, in
// every hierarchy under /sys/fs/cgroup (or the v2 root itself), to whether
// it exists now. Deepest directories come last.
func existingDirs(path string) []dirState {
	var roots []string
	if cgroups.Mode() == cgroups.Unified {
		roots = []string{"/sys/fs/cgroup"}
	} else if entries, err := os.ReadDir("/sys/fs/cgroup"); err == nil {
		for _, e := range entries {
			roots = append(roots, filepath.Join("/sys/fs/cgroup", e.Name()))
		}
	}
	var out []dirState
	for _, root := range roots {
		p := root
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			p = filepath.Join(p, part)
			_, err := os.Stat(p)
			out = append(out, dirState{path: p, existed: err == nil})
		}
	}
	return out
}

type dirState struct {
	path    string
	existed bool
}

// removeCreated removes, deepest first, the directories that did not exist
// before; rmdir leaves any that processes or children now use.
func removeCreated(dirs []dirState) {
	for i := len(dirs) - 1; i >= 0; i-- {
		if !dirs[i].existed {
			_ = os.Remove(dirs[i].path)
		}
	}
}

func withDefaultDevices(res *specs.LinuxResources) *specs.LinuxResources {
	out := specs.LinuxResources{}
	if res != nil {
		out = *res
	}
	i64 := func(v int64) *int64 { return &v }
	allow := func(typ string, major, minor *int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: typ, Major: major, Minor: minor, Access: "rwm"}
	}
	out.Devices = append(append([]specs.LinuxDeviceCgroup{}, out.Devices...),
		specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"},
		specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"},
		allow("c", i64(1), i64(3)),    // null
		allow("c", i64(1), i64(5)),    // zero
		allow("c", i64(1), i64(7)),    // full
		allow("c", i64(1), i64(8)),    // random
		allow("c", i64(1), i64(9)),    // urandom
		allow("c", i64(5), i64(0)),    // tty
		allow("c", i64(5), i64(1)),    // console
		allow("c", i64(5), i64(2)),    // ptmx
		allow("c", i64(136), nil),     // pts
		allow("c", i64(10), i64(200)), // net/tun
	)
	return &out
}

// drain kills every process in the cgroup while it is frozen, so none can
// fork away, and waits until the kernel has emptied it.
func drain(m Manager) error {
	_ = m.Freeze()
	pids, err := m.Pids()
	if err != nil {
		_ = m.Thaw()
		return err
	}
	for _, pid := range pids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = m.Thaw()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if pids, err := m.Pids(); err != nil || len(pids) == 0 {
			return nil
		}
	}
	return fmt.Errorf("processes %v did not exit after SIGKILL", pids)
}

type v1 struct {
	cg   cgroup1.Cgroup
	path string
}

func (c *v1) Add(pid int) error {
	return c.cg.Add(cgroup1.Process{Pid: pid})
}

func (c *v1) Pids() ([]int, error) {
	subsystem := cgroup1.Devices
	for _, s := range c.cg.Subsystems() {
		if s.Name() == cgroup1.Freezer {
			subsystem = cgroup1.Freezer
		}
	}
	procs, err := c.cg.Processes(subsystem, true)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, p.Pid)
	}
	return pids, nil
}

func (c *v1) Freeze() error { return c.cg.Freeze() }
func (c *v1) Thaw() error   { return c.cg.Thaw() }
func (c *v1) Frozen() bool  { return c.cg.State() == cgroup1.Frozen }

func (c *v1) Delete() error {
	if err := drain(c); err != nil {
		return err
	}
	return c.cg.Delete()
}

type pather interface{ Path(string) string }

func (c *v1) MountPaths() map[string]string {
	paths := map[string]string{}
	for _, s := range c.cg.Subsystems() {
		if p, ok := s.(pather); ok {
			// Path("/") is the hierarchy's mount point, named like the
			// directory the container expects under /sys/fs/cgroup.
			paths[filepath.Base(p.Path("/"))] = p.Path(c.path)
		}
	}
	return paths
}

type v2 struct {
	m    *cgroup2.Manager
	path string
}

func (c *v2) Add(pid int) error { return c.m.AddProc(uint64(pid)) }

func (c *v2) Pids() ([]int, error) {
	procs, err := c.m.Procs(true)
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(procs))
	for _, p := range procs {
		pids = append(pids, int(p))
	}
	return pids, nil
}

func (c *v2) Freeze() error { return c.m.Freeze() }
func (c *v2) Thaw() error   { return c.m.Thaw() }

func (c *v2) Frozen() bool {
	data, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", c.path, "cgroup.freeze"))
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

func (c *v2) Delete() error {
	if err := drain(c); err != nil {
		return err
	}
	return c.m.Delete()
}

func (c *v2) MountPaths() map[string]string {
	return map[string]string{"": "/sys/fs/cgroup" + c.path}
}
