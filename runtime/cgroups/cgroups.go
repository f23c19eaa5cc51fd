// Package cgroups places a container in its control group and tears it down,
// on cgroup v1 (this includes hybrid hosts) and v2, through
// containerd/cgroups/v3, with the cgroupfs driver or the systemd one.
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
	ocgroups "github.com/opencontainers/cgroups"
	"github.com/opencontainers/cgroups/fs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Manager controls one container's cgroup.
type Manager interface {
	// Add moves a process into the cgroup. The caller then resets its CPU
	// affinity (ResetCPUAffinity), as after exec --cgroup's Paths.AddSub.
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

// Paths is where a container's cgroup is: the path inside each v1 hierarchy
// (keyed by subsystem name as containerd/cgroups names it), or under "" on
// cgroup v2. It is resolved once at create and kept in the container's
// state, so every later command finds the same cgroup whatever cgroup it
// runs in itself.
type Paths map[string]string

// Resolve turns a spec's cgroupsPath into Paths. An absolute path is used
// as is in every hierarchy; a relative one is placed, as runc does, under
// the caller's own cgroup in each v1 hierarchy, and on cgroup v2 under its
// parent. systemd-style "slice:prefix:name" paths need the systemd driver
// (ResolveUnit).
func Resolve(p string) (Paths, error) {
	if strings.Count(p, ":") == 2 {
		return nil, fmt.Errorf("cgroupsPath %q is a systemd unit path: use the systemd cgroup driver (--systemd-cgroup, or SystemdCgroup = true in containerd)", p)
	}
	if p == "" {
		return nil, errors.New("cgroupsPath is empty")
	}
	own, unified, err := cgroups.ParseCgroupFileUnified("/proc/self/cgroup") // procfs-literal: read by create, in the host's mount namespace
	if err != nil {
		return nil, fmt.Errorf("read own cgroup: %w", err)
	}
	if cgroups.Mode() == cgroups.Unified {
		if !filepath.IsAbs(p) {
			// Under the parent of the caller's cgroup, as runc does: v2
			// enables no controller for the children of a cgroup with
			// processes, and the caller's (a service's, a session's)
			// has at least the caller.
			p = filepath.Join(filepath.Dir(unified), p)
		}
		return Paths{"": filepath.Clean(p)}, nil
	}
	paths := Paths{}
	for name, parent := range own {
		name = strings.TrimPrefix(name, "name=")
		if filepath.IsAbs(p) {
			paths[name] = filepath.Clean(p)
		} else {
			paths[name] = filepath.Join(parent, p)
		}
	}
	if cgroups.Mode() == cgroups.Hybrid {
		// runc places the container's processes in the v2 hierarchy
		// of a hybrid host too, where systemd and cgroup-aware tools
		// look for them, instead of leaving them in the caller's.
		if filepath.IsAbs(p) {
			paths[unifiedKey] = filepath.Clean(p)
		} else {
			paths[unifiedKey] = filepath.Join(unified, p)
		}
	}
	return paths, nil
}

// v1Path looks each subsystem up in the resolved paths.
func (p Paths) v1Path(name cgroup1.Name) (string, error) {
	if v, ok := p[string(name)]; ok {
		return v, nil
	}
	return "", cgroup1.ErrControllerNotActive
}

// New creates the cgroup and applies resources. The default device nodes
// are always allowed, whatever the spec's device rules deny. Resources for a
// controller the host does not have are an error, not silently dropped. A
// cgroup that already has processes or is frozen is refused, as runc does:
// the container's init would hang in a frozen one, and delete would kill
// whatever else runs in it.
func New(paths Paths, res *specs.LinuxResources) (Manager, error) {
	if err := checkUnused(paths); err != nil {
		return nil, err
	}
	return create(paths, res)
}

// create is New without the check: the systemd driver's cgroup has the
// init in it already when its limits are written.
func create(paths Paths, res *specs.LinuxResources) (Manager, error) {
	if err := checkControllers(paths, res); err != nil {
		return nil, err
	}
	res = withDefaultDevices(res)
	if _, v2 := paths[""]; !v2 && len(res.Unified) > 0 {
		return nil, errV1Unified
	}
	if err := checkDevices(res.Devices); err != nil {
		return nil, err
	}
	// A limit the kernel refuses fails creation half-way, with directories
	// made in some hierarchies: remember what existed to remove the rest.
	existed := existingDirs(paths)
	if v2path, ok := paths[""]; ok {
		err := createV2(v2path)
		var m *cgroup2.Manager
		if err == nil {
			m, err = cgroup2.NewManager(v2Root, v2path, v2Resources(res))
		}
		if err == nil {
			err = setV2(filepath.Join(v2Root, v2path), res, false)
		}
		if err != nil {
			removeCreated(existed)
			return nil, fmt.Errorf("create cgroup %s: %w", v2path, err)
		}
		return &v2{m: m, path: v2path}, nil
	}
	// Only the directories: runc's controllers write the limits.
	cg, err := cgroup1.New(paths.v1Path, &specs.LinuxResources{})
	if err == nil {
		err = setV1(paths, res, false)
	}
	if err != nil {
		removeCreated(existed)
		return nil, fmt.Errorf("create cgroup %s: %w", paths, err)
	}
	return &v1{cg: cg, paths: paths}, nil
}

// Load opens an existing cgroup.
func Load(paths Paths) (Manager, error) {
	if v2path, ok := paths[""]; ok {
		m, err := cgroup2.Load(v2path)
		if err != nil {
			return nil, fmt.Errorf("load cgroup %s: %w", v2path, err)
		}
		if _, err := m.Procs(false); err != nil {
			return nil, ErrNotExist
		}
		return &v2{m: m, path: v2path}, nil
	}
	cg, err := cgroup1.Load(paths.v1Path)
	if errors.Is(err, cgroup1.ErrCgroupDeleted) {
		return nil, ErrNotExist
	}
	if err != nil {
		return nil, fmt.Errorf("load cgroup %s: %w", paths, err)
	}
	return &v1{cg: cg, paths: paths}, nil
}

// checkControllers refuses limits for controllers this host lacks, as runc
// does, instead of running the container without them.
func checkControllers(paths Paths, res *specs.LinuxResources) error {
	if res == nil {
		return nil
	}
	if _, v2 := paths[""]; v2 {
		return nil // cgroup2.NewManager reports missing controllers itself
	}
	need := map[string]bool{
		"net_cls":  res.Network != nil && res.Network.ClassID != nil,
		"net_prio": res.Network != nil && len(res.Network.Priorities) > 0,
		"hugetlb":  len(res.HugepageLimits) > 0,
		"rdma":     len(res.Rdma) > 0,
	}
	for name, needed := range need {
		if _, ok := paths[name]; needed && !ok {
			return fmt.Errorf("the spec sets %s limits, but the %s cgroup controller is not mounted on this host", name, name)
		}
	}
	return nil
}

// errFrozen is runc's refusal of a frozen cgroup.
var errFrozen = errors.New("container's cgroup unexpectedly frozen")

// checkUnused refuses, with runc's errors (its factory's Create in runc
// 1.5.2), a cgroup that has processes or is frozen. On v1, as runc, the
// processes are looked for in the devices hierarchy.
func checkUnused(paths Paths) error {
	if p, ok := paths[""]; ok {
		dir := filepath.Join(v2Root, p)
		if err := checkEmpty(dir); err != nil {
			return err
		}
		if v2Frozen(dir) {
			return errFrozen
		}
		return nil
	}
	if p, ok := paths["devices"]; ok {
		if err := checkEmpty(filepath.Join(mountPoint("devices"), p)); err != nil {
			return err
		}
	}
	if p, ok := paths["freezer"]; ok {
		st, err := (&fs.FreezerGroup{}).GetState(filepath.Join(mountPoint("freezer"), p))
		if err != nil {
			return fmt.Errorf("unable to get cgroup freezer state: %w", err)
		}
		if st == ocgroups.Frozen {
			return errFrozen
		}
	}
	return nil
}

func checkEmpty(dir string) error {
	pids, err := ocgroups.GetAllPids(dir)
	if err != nil && !gone(err) {
		return fmt.Errorf("unable to get cgroup PIDs: %w", err)
	}
	if len(pids) != 0 {
		return fmt.Errorf("container's cgroup is not empty: %d process(es) found", len(pids))
	}
	return nil
}

// existingDirs records, for the cgroup's directory and each of its parents
// in every hierarchy, whether it exists now. Deepest directories come last.
func existingDirs(paths Paths) []dirState {
	var out []dirState
	for name, path := range paths {
		p := hierarchyRoot(name)
		for _, part := range strings.Split(strings.Trim(path, "/"), "/") {
			p = filepath.Join(p, part)
			_, err := os.Stat(p)
			out = append(out, dirState{path: p, existed: err == nil})
		}
	}
	return out
}

// mountPoint is where a v1 hierarchy is mounted; containerd/cgroups expects
// /sys/fs/cgroup/<name> too.
func mountPoint(name string) string { return filepath.Join("/sys/fs/cgroup", name) }

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

// drain kills every process in the cgroup while it is frozen, so none can
// fork away, and waits until the kernel has emptied it. An empty cgroup
// (the usual delete: the init has exited and, with its own pid namespace,
// taken every other process with it) is left as it is: with no process
// in it, none can fork into it, and freezing and thawing it is work for
// nothing.
func drain(m Manager) error {
	pids, err := m.Pids()
	if err == nil && len(pids) == 0 {
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		_ = m.Freeze()
		pids, err = m.Pids()
	}
	if errors.Is(err, os.ErrNotExist) {
		// Gone while being read: systemd removes a scope's cgroup as
		// soon as its last process has died.
		return nil
	}
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

type v2 struct {
	m    *cgroup2.Manager
	path string
}

func (c *v2) Add(pid int) error {
	return c.m.AddProc(uint64(pid))
}

func (c *v2) Pids() ([]int, error) {
	return treePids(filepath.Join(v2Root, c.path), ocgroups.GetPids)
}

func (c *v2) Freeze() error { return c.m.Freeze() }
func (c *v2) Thaw() error   { return c.m.Thaw() }

func (c *v2) Frozen() bool { return v2Frozen(filepath.Join(v2Root, c.path)) }

// v2Frozen tells whether the cgroup v2 directory dir is frozen or being
// frozen (cgroup.freeze is 1): the one reading of it that create's refusal
// of a frozen cgroup and Frozen share.
func v2Frozen(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze"))
	return err == nil && strings.TrimSpace(string(data)) == "1"
}

// Delete kills what is left in the cgroup and removes it with any cgroups
// below it, as on v1.
func (c *v2) Delete() error {
	if err := drain(c); err != nil {
		return err
	}
	// removeTree's errors name the directory (rmdir PATH: ...).
	return removeTree(filepath.Join(v2Root, c.path))
}

func (c *v2) MountPaths() map[string]string {
	return map[string]string{"": "/sys/fs/cgroup" + c.path}
}

// String shows the path once when every hierarchy uses the same one.
func (p Paths) String() string {
	var first string
	for _, v := range p {
		if first == "" {
			first = v
		} else if v != first {
			return fmt.Sprint(map[string]string(p))
		}
	}
	return first
}
