package cgroups

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	systemd "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// The systemd driver, as runc's: systemd creates the container's cgroup as
// a transient unit and keeps its limits as unit properties; the limits are
// then also written to cgroupfs, which is where hierarchies systemd does not
// manage (freezer, cpuset, net_cls... on v1) get them, and the init joins
// every hierarchy. Later commands work on cgroupfs and only talk to systemd
// to change the unit's properties (update) or stop it (delete).

// jobTimeout bounds how long a unit start or stop may take.
const jobTimeout = 30 * time.Second

// withSystemd runs fn with a connection to systemd, all of it bounded by
// jobTimeout. The connection is tied to the context: it closes with it.
func withSystemd(fn func(ctx context.Context, conn *systemd.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), jobTimeout)
	defer cancel()
	conn, err := connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(ctx, conn)
}

func connect(ctx context.Context) (*systemd.Conn, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("the systemd cgroup driver needs root: rootless containers are not supported")
	}
	conn, err := systemd.NewWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect to systemd over D-Bus (is systemd the init of this host?): %w", err)
	}
	return conn, nil
}

// NewSystemd prepares the unit for a container. Nothing is created until
// Add places the init: systemd only starts a scope with a process in it.
func NewSystemd(u Unit, paths Paths, res *specs.LinuxResources) (Manager, error) {
	if err := checkUnused(paths); err != nil {
		return nil, err
	}
	if err := checkControllers(paths, res); err != nil {
		return nil, err
	}
	res = withDefaultDevices(res)
	if !isV2(paths) && len(res.Unified) > 0 {
		return nil, errV1Unified
	}
	if err := checkDevices(res.Devices); err != nil {
		return nil, err
	}
	// Fail now, with nothing made, if the properties cannot be expressed.
	// An unreachable systemd shows at Add, whose failure create undoes.
	if _, err := unitProperties(u, 0, res, isV2(paths)); err != nil {
		return nil, err
	}
	return &systemdCgroup{unit: u, paths: paths, res: res}, nil
}

// LoadSystemd opens the cgroup of a container the systemd driver created.
// Its directories may be gone, all (systemd removes a scope's when it
// empties, every one on v2) or some, while the unit is still loaded (a
// failed one stays until reset): Delete still stops and resets the unit
// and removes what is left, so the name can be used again.
func LoadSystemd(u Unit, paths Paths) (Manager, error) {
	inner, err := Load(paths)
	if err != nil && !errors.Is(err, ErrNotExist) {
		return nil, err
	}
	return &systemdCgroup{unit: u, paths: paths, inner: inner}, nil
}

type systemdCgroup struct {
	unit  Unit
	paths Paths
	res   *specs.LinuxResources // set until the unit is started
	inner Manager               // the cgroupfs view, once the unit exists
}

func isV2(paths Paths) bool { _, ok := paths[""]; return ok }

// Add starts the unit with pid in it on the first call, then applies the
// limits through cgroupfs and joins pid to every hierarchy.
func (c *systemdCgroup) Add(pid int) error {
	if c.inner == nil {
		if err := c.startUnit(pid); err != nil {
			return err
		}
		inner, err := create(c.paths, c.res)
		if err != nil {
			_ = c.stopUnit()
			_ = c.removeDirs()
			return err
		}
		c.inner = inner
	}
	return c.inner.Add(pid)
}

func (c *systemdCgroup) startUnit(pid int) error {
	props, err := unitProperties(c.unit, pid, c.res, isV2(c.paths))
	if err != nil {
		return err
	}
	return withSystemd(func(ctx context.Context, conn *systemd.Conn) error {
		return c.start(ctx, conn, forVersion(conn, props))
	})
}

func (c *systemdCgroup) start(ctx context.Context, conn *systemd.Conn, props []systemd.Property) error {
	done := make(chan string, 1)
	_, err := conn.StartTransientUnitContext(ctx, c.unit.Name, "replace", props, done)
	if isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
		// A failed unit of a container of the same name stays loaded
		// until reset, as runc found; an active one is another
		// container's and the retry fails the same way.
		c.resetFailed(conn)
		_, err = conn.StartTransientUnitContext(ctx, c.unit.Name, "replace", props, done)
		if isDBusError(err, "org.freedesktop.systemd1.UnitExists") {
			return fmt.Errorf("start systemd unit %s: a unit of that name already exists (is another container using the same cgroupsPath?)", c.unit.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("start systemd unit %s: %w", c.unit.Name, err)
	}
	// From here the unit may exist: any failure stops it again.
	select {
	case result := <-done:
		if result != "done" {
			_ = c.stopUnit()
			return fmt.Errorf("start systemd unit %s: job %s", c.unit.Name, result)
		}
	case <-ctx.Done():
		_ = c.stopUnit()
		return fmt.Errorf("start systemd unit %s: no answer from systemd in %s", c.unit.Name, jobTimeout)
	}
	return nil
}

func isDBusError(err error, name string) bool {
	var derr dbus.Error
	return errors.As(err, &derr) && derr.Name == name
}

// forVersion drops properties the running systemd is too old for (it
// would refuse the whole unit): CPUQuotaPeriodUSec came in systemd 242.
func forVersion(conn *systemd.Conn, props []systemd.Property) []systemd.Property {
	v, err := conn.GetManagerProperty("Version")
	if err != nil {
		return props
	}
	// A quoted D-Bus string such as "252.38-1~deb12u1".
	digits := strings.FieldsFunc(v, func(r rune) bool { return r < '0' || r > '9' })
	if len(digits) == 0 {
		return props
	}
	if major, _ := strconv.Atoi(digits[0]); major >= 242 {
		return props
	}
	out := props[:0:0]
	for _, p := range props {
		if p.Name != "CPUQuotaPeriodUSec" {
			out = append(out, p)
		}
	}
	return out
}

// stopUnit stops the unit and forgets a failed state, so that its name can
// be used again. A unit systemd already dropped is not an error.
func (c *systemdCgroup) stopUnit() error {
	return withSystemd(c.stop)
}

func (c *systemdCgroup) stop(ctx context.Context, conn *systemd.Conn) error {
	done := make(chan string, 1)
	if _, err := conn.StopUnitContext(ctx, c.unit.Name, "replace", done); err != nil {
		if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
			return nil
		}
		return fmt.Errorf("stop systemd unit %s: %w", c.unit.Name, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop systemd unit %s: no answer from systemd in %s", c.unit.Name, jobTimeout)
	}
	c.resetFailed(conn)
	return nil
}

func (c *systemdCgroup) resetFailed(conn *systemd.Conn) {
	_ = conn.ResetFailedUnitContext(context.Background(), c.unit.Name)
}

// removeDirs removes the container's own directory in every hierarchy,
// with the sub-cgroups a delegated container may have made below it; the
// slices above it belong to systemd.
func (c *systemdCgroup) removeDirs() error {
	var errs []error
	for name, p := range c.paths {
		dir := filepath.Join(hierarchyRoot(name), p)
		if err := removeTree(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

func (c *systemdCgroup) Pids() ([]int, error) {
	if c.inner == nil {
		return []int{}, nil
	}
	return c.inner.Pids()
}

func (c *systemdCgroup) Freeze() error {
	if c.inner == nil {
		return ErrNotExist
	}
	return c.inner.Freeze()
}

func (c *systemdCgroup) Thaw() error {
	if c.inner == nil {
		return nil
	}
	return c.inner.Thaw()
}

func (c *systemdCgroup) Frozen() bool { return c.inner != nil && c.inner.Frozen() }

// Update changes the unit's properties first, so that systemd's copy of
// the limits never lags behind cgroupfs, then cgroupfs itself.
func (c *systemdCgroup) Update(res *specs.LinuxResources) error {
	if c.inner == nil {
		return ErrNotExist
	}
	props, err := resourceProperties(res, isV2(c.paths))
	if err != nil {
		return err
	}
	if len(props) > 0 {
		if err := withSystemd(func(ctx context.Context, conn *systemd.Conn) error {
			return conn.SetUnitPropertiesContext(ctx, c.unit.Name, true, forVersion(conn, props)...)
		}); err != nil {
			return fmt.Errorf("set properties of systemd unit %s: %w", c.unit.Name, err)
		}
	}
	return c.inner.Update(res)
}

func (c *systemdCgroup) Stats() (*Stats, error) {
	if c.inner == nil {
		return nil, ErrNotExist
	}
	return c.inner.Stats()
}

func (c *systemdCgroup) OOMKills() (uint64, error) {
	if c.inner == nil {
		return 0, ErrNotExist
	}
	return c.inner.OOMKills()
}

// Delete kills what is left, stops the unit and removes the directories
// systemd did not.
func (c *systemdCgroup) Delete() error {
	if c.inner != nil {
		if err := drain(c.inner); err != nil {
			return err
		}
	}
	if c.inner == nil && c.res != nil {
		return nil // never started: nothing was created
	}
	if err := c.stopUnit(); err != nil {
		return err
	}
	return c.removeDirs()
}

func (c *systemdCgroup) MountPaths() map[string]string {
	if c.inner == nil {
		return map[string]string{}
	}
	return c.inner.MountPaths()
}

// hierarchyRoot is where a hierarchy's root is mounted: "" is cgroup v2.
func hierarchyRoot(name string) string {
	if name == "" {
		return "/sys/fs/cgroup"
	}
	return mountPoint(name)
}
