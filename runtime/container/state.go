// Package container is the runtime's side of a container's lifecycle: the
// state directory under --root, create (spawning the init), start, kill,
// delete and the status runc reports.
package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/cgroups"
	"github.com/hostnet-dev/hostnet/runtime/internal/exeseal"
)

// Status values, as runc reports them.
const (
	Created = "created"
	Running = "running"
	Paused  = "paused"
	Stopped = "stopped"
)

const (
	stateFile = "state.json"
	fifoName  = "exec.fifo"
)

// State is what the runtime persists about a container.
type State struct {
	ID        string        `json:"id"`
	Bundle    string        `json:"bundle"`
	Rootfs    string        `json:"rootfs"`
	InitPid   int           `json:"initPid"`
	InitStart uint64        `json:"initStart"` // guards against pid reuse
	Created   time.Time     `json:"created"`
	Cgroup    cgroups.Paths `json:"cgroup"`
	// CgroupUnit is the systemd unit that owns the cgroup, when the
	// systemd driver created it.
	CgroupUnit  *cgroups.Unit     `json:"cgroupUnit,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	OCIVersion  string            `json:"ociVersion"`
	Hooks       *specs.Hooks      `json:"hooks,omitempty"`
	// HostMountNS containers leave their mounts in the host's namespace,
	// which delete removes.
	HostMountNS bool `json:"hostMountNS,omitempty"`
	// Seccomp applies to processes exec'd into the container too.
	Seccomp *specs.LinuxSeccomp `json:"seccomp,omitempty"`
	// Format is the StateFormat of the hostnet-runc that wrote the state
	// (0 before formats were recorded, read as 1).
	Format int `json:"format,omitempty"`
}

// StateFormat is the format of the state this build writes and reads. A
// release that changes what a field means, or adds one that kill, delete
// or another command must honour, raises it. A shim running the runtime
// in its own process outlives upgrades: it leaves a container whose state
// is newer than its code (ErrNewerState) to the installed command line.
const StateFormat = 1

// ErrNewerState is returned for a state written by a newer hostnet-runc.
var ErrNewerState = errors.New("container state written by a newer hostnet-runc")

// Container is a container's state directory and what it holds.
type Container struct {
	Dir string
	State
	// Owner is the user owning the state directory, set by List.
	Owner string `json:"-"`
}

// ErrNotExist is returned for an id with no state.
var ErrNotExist = errors.New("container does not exist")

// Load reads a container's state.
func Load(root, id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := filepath.Join(root, id)
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %q: %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("read state of container %q: %w", id, err)
	}
	c := &Container{Dir: dir}
	if err := json.Unmarshal(data, &c.State); err != nil {
		return nil, fmt.Errorf("parse state of container %q: %w", id, err)
	}
	if c.Format > StateFormat {
		return nil, fmt.Errorf("container %q: state format %d, this hostnet-runc reads up to %d: %w", id, c.Format, StateFormat, ErrNewerState)
	}
	return c, nil
}

func (c *Container) save() error {
	data, err := json.Marshal(c.State)
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(c.Dir, stateFile), data, 0o600)
}

// Status tells created (init waiting on the exec fifo), running, paused or
// stopped, from the live process rather than from what was last written.
func (c *Container) Status() string {
	if !processAlive(c.InitPid, c.InitStart) {
		return Stopped
	}
	return c.liveStatus()
}

// liveStatus is the status of a container whose init is alive.
func (c *Container) liveStatus() string {
	if _, err := os.Lstat(filepath.Join(c.Dir, fifoName)); err == nil {
		return Created
	}
	if c.frozen() {
		return Paused
	}
	return Running
}

// OCIState is the runtime-spec state, the shape `runc state` prints.
type OCIState struct {
	OCIVersion  string            `json:"ociVersion"`
	ID          string            `json:"id"`
	Pid         int               `json:"pid"`
	Status      string            `json:"status"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Created     time.Time         `json:"created"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Owner       string            `json:"owner"`
}

// OCIState reports the container as `runc state` does.
func (c *Container) OCIState() OCIState {
	status := c.Status()
	pid := c.InitPid
	if status == Stopped {
		pid = 0
	}
	return OCIState{
		OCIVersion: c.OCIVersion, ID: c.ID, Pid: pid, Status: status, Bundle: c.Bundle,
		Rootfs: c.Rootfs, Created: c.Created, Annotations: c.Annotations, Owner: c.Owner,
	}
}

// List loads every container under root, with the owner of its state
// directory, as `runc list` reports them. A missing root is an error
// unless missingOK.
func List(root string, missingOK bool) ([]*Container, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) && missingOK {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*Container
	for _, e := range entries {
		// The sealed binaries' directory is the runtime's own, no
		// container's (its name is no container id).
		if !e.IsDir() || e.Name() == exeseal.DirName {
			continue
		}
		c, err := Load(root, e.Name())
		if err != nil {
			// As runc: a half-created container is reported, not fatal.
			if !errors.Is(err, ErrNotExist) {
				fmt.Fprintf(os.Stderr, "load container %s: %v\n", e.Name(), err)
			}
			continue
		}
		c.Owner = owner(c.Dir)
		out = append(out, c)
	}
	return out, nil
}

// owner names the user owning dir, or "#uid" if it has no name.
func owner(dir string) string {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return ""
	}
	uid := strconv.Itoa(int(st.Uid))
	if u, err := user.LookupId(uid); err == nil {
		return u.Username
	}
	return "#" + uid
}

func (c *Container) frozen() bool {
	m, err := c.LoadCgroup()
	if err != nil {
		return false
	}
	return m.Frozen()
}

// LoadCgroup opens the container's cgroup with the driver that created it.
func (c *Container) LoadCgroup() (cgroups.Manager, error) {
	if c.CgroupUnit != nil {
		return cgroups.LoadSystemd(*c.CgroupUnit, c.Cgroup)
	}
	return cgroups.Load(c.Cgroup)
}

// processStart returns the start time of pid (field 22 of /proc/pid/stat)
// and whether it is a zombie, which counts as stopped.
func processStart(pid int) (start uint64, zombie bool, err error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false, err
	}
	// The command name may hold spaces and parentheses: split after the last ')'.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 20 {
		return 0, false, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	start, err = strconv.ParseUint(fields[19], 10, 64)
	return start, fields[0] == "Z", err
}

func processAlive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	s, zombie, err := processStart(pid)
	return err == nil && !zombie && s == start
}

// writeFileAtomic writes a temp file in the same directory and renames it,
// so readers never see a partial file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
