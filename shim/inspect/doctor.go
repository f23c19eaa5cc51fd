package inspect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/network/cni"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
	"github.com/hostnet-dev/hostnet/spec"
)

// Finding statuses. Only StatusFail makes `hostnet doctor` exit non-zero.
const (
	StatusOK    = "ok"
	StatusWarn  = "warn"
	StatusFail  = "fail"
	StatusFixed = "fixed" // a leftover --fix removed
)

// Finding is one thing `hostnet doctor` checked.
type Finding struct {
	Check   string `json:"check"`
	Status  string `json:"status"`
	Message string `json:"message"`
	// Remedy says what to do about a warning or failure, in one line.
	Remedy string `json:"remedy,omitempty"`
}

// DoctorOptions say where to look and whether to fix.
type DoctorOptions struct {
	Options
	// ContainerdConfig is containerd's configuration file; if empty, the
	// one the containerd serving Options.State runs with, else
	// DefaultContainerdConfig.
	ContainerdConfig string
	// Fix removes leftovers proven stale.
	Fix bool
}

// DefaultContainerdConfig is containerd's default configuration file.
const DefaultContainerdConfig = "/etc/containerd/config.toml"

const (
	runtimeType = "io.containerd.hostnet.v1"
	shimBinary  = "containerd-shim-hostnet-v1"
)

// Containerd versions hostnet was measured with (README, "Status and
// compatibility"): 1.6 to 2.4.
var (
	minContainerd      = [2]int{1, 6}
	measuredContainerd = [2]int{2, 4}
)

// Doctor checks the node and returns what it found, failures first kept in
// the order checked.
func Doctor(o DoctorOptions) []Finding {
	o.Options = o.withDefaults()
	d := &doctor{o: o}
	d.containerd()
	d.shimAndRuntime()
	d.ctrs, d.ctrsErr = Containers(d.o.Options)
	d.cri()
	d.cgroups()
	d.nftables()
	d.forwarding()
	d.subnets()
	d.leftovers()
	return d.findings
}

type doctor struct {
	o        DoctorOptions
	findings []Finding

	// ctrd is the containerd serving o.State, nil if none runs.
	ctrd *containerdProc
	// node is the node's hostnet configuration (the defaults if it
	// cannot be read).
	node     config.Config
	criRunc  bool // a CRI runc runtime uses SystemdCgroup
	nodePath string
	// ctrs are the containers of o.State, as `hostnet ps` lists them.
	ctrs    []*Container
	ctrsErr error
}

func (d *doctor) add(check, status, remedy, format string, args ...any) {
	d.findings = append(d.findings, Finding{Check: check, Status: status, Message: fmt.Sprintf(format, args...), Remedy: remedy})
}

// containerdProc is a running containerd.
type containerdProc struct {
	pid     int
	exe     string
	config  string
	state   string
	environ []string
}

func (c *containerdProc) getenv(name string) (string, bool) {
	for _, kv := range c.environ {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// findContainerd finds the containerd whose state directory is state:
// its --state, else its configuration's "state", else /run/containerd.
func findContainerd(proc, state string) *containerdProc {
	entries, _ := os.ReadDir(proc)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join(proc, e.Name(), "exe"))
		if err != nil || filepath.Base(strings.TrimSuffix(exe, " (deleted)")) != "containerd" {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		c := &containerdProc{pid: pid, exe: exe, config: DefaultContainerdConfig, state: DefaultState}
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		stateFlag := ""
		for i := 1; i < len(args); i++ {
			a := args[i]
			for _, f := range []struct {
				names []string
				dst   *string
			}{{[]string{"--config", "-c"}, &c.config}, {[]string{"--state"}, &stateFlag}} {
				for _, n := range f.names {
					if v, ok := strings.CutPrefix(a, n+"="); ok {
						*f.dst = v
					} else if a == n && i+1 < len(args) {
						*f.dst = args[i+1]
					}
				}
			}
		}
		if stateFlag != "" {
			c.state = stateFlag
		} else if doc, err := readTOML(c.config); err == nil {
			if s, ok := doc["state"].(string); ok && s != "" {
				c.state = s
			}
		}
		if filepath.Clean(c.state) != filepath.Clean(state) {
			continue
		}
		if env, err := os.ReadFile(filepath.Join(proc, e.Name(), "environ")); err == nil {
			c.environ = strings.Split(strings.TrimRight(string(env), "\x00"), "\x00")
		}
		return c
	}
	return nil
}

func readTOML(file string) (map[string]any, error) {
	data, err := os.ReadFile(file) //nolint:gosec // containerd's configuration, named by the operator or containerd's command line
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return doc, nil
}

var versionRE = regexp.MustCompile(`(?:^|\s)v?(\d+)\.(\d+)\.(\d+)\S*`)

// ParseContainerdVersion reads `containerd --version`: "containerd
// github.com/containerd/containerd/v2 v2.4.2 <commit>", or Debian's
// "containerd github.com/containerd/containerd 1.6.20~ds1 ...".
func ParseContainerdVersion(out string) (major, minor int, full string, ok bool) {
	m := versionRE.FindStringSubmatch(out)
	if m == nil {
		return 0, 0, "", false
	}
	major, _ = strconv.Atoi(m[1])
	minor, _ = strconv.Atoi(m[2])
	return major, minor, strings.TrimSpace(m[0]), true
}

// CheckContainerdVersion says whether hostnet runs under containerd
// major.minor: StatusFail before 1.6, StatusWarn after the newest release
// measured.
func CheckContainerdVersion(major, minor int) (status, why string) {
	v := [2]int{major, minor}
	switch {
	case v[0] < minContainerd[0] || (v[0] == minContainerd[0] && v[1] < minContainerd[1]):
		return StatusFail, fmt.Sprintf("hostnet needs containerd %d.%d or later", minContainerd[0], minContainerd[1])
	case v[0] > measuredContainerd[0] || (v[0] == measuredContainerd[0] && v[1] > measuredContainerd[1]):
		return StatusWarn, fmt.Sprintf("newer than the releases hostnet was measured with (%d.%d to %d.%d)",
			minContainerd[0], minContainerd[1], measuredContainerd[0], measuredContainerd[1])
	}
	return StatusOK, fmt.Sprintf("measured with hostnet (%d.%d to %d.%d)", minContainerd[0], minContainerd[1], measuredContainerd[0], measuredContainerd[1])
}

func (d *doctor) containerd() {
	const check = "containerd"
	d.ctrd = findContainerd(d.o.Proc, d.o.State)
	bin := ""
	if d.ctrd != nil {
		// By the running process's link: the binary it runs, even if
		// the file was replaced since.
		bin = filepath.Join(d.o.Proc, strconv.Itoa(d.ctrd.pid), "exe")
		d.add(check, StatusOK, "", "containerd pid %d (%s, config %s) serves state directory %s", d.ctrd.pid, d.ctrd.exe, d.ctrd.config, d.o.State)
	} else {
		d.add(check, StatusWarn, "start containerd, or point --state at the state directory it serves",
			"no running containerd serves state directory %s: checking the containerd on PATH and this environment instead", d.o.State)
		p, err := exec.LookPath("containerd")
		if err != nil {
			d.add(check, StatusFail, "install containerd 1.6 or later", "no containerd binary on PATH")
			return
		}
		bin = p
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--version").Output() //nolint:gosec // containerd's own binary
	if err != nil {
		d.add(check, StatusWarn, "run `containerd --version` to see why", "cannot tell containerd's version: %v", err)
		return
	}
	major, minor, full, ok := ParseContainerdVersion(string(out))
	if !ok {
		d.add(check, StatusWarn, "see README, Status and compatibility", "cannot read a version in %q", strings.TrimSpace(string(out)))
		return
	}
	status, why := CheckContainerdVersion(major, minor)
	remedy := ""
	if status != StatusOK {
		remedy = "use a containerd release of README's compatibility table (1.6 to 2.4)"
	}
	d.add(check, status, remedy, "version %s: %s", full, why)
}

// lookPathIn is exec.LookPath over the directories of pathEnv.
func lookPathIn(pathEnv string) func(string) (string, error) {
	return func(name string) (string, error) {
		for _, dir := range filepath.SplitList(pathEnv) {
			if dir == "" {
				dir = "."
			}
			if p := filepath.Join(dir, name); isExecutable(p) {
				return p, nil
			}
		}
		return "", fmt.Errorf("%s: %w", name, exec.ErrNotFound)
	}
}

// shimAndRuntime checks that containerd finds the shim (its PATH, then
// beside its own binary, as containerd's shim manager looks) and that the
// shim finds its OCI runtime (beside itself, then its PATH), and that the
// node's configuration file parses.
func (d *doctor) shimAndRuntime() {
	pathEnv, whose := os.Getenv("PATH"), "this command's"
	if d.ctrd != nil {
		if p, ok := d.ctrd.getenv("PATH"); ok {
			pathEnv, whose = p, "containerd's"
		}
	}
	look := lookPathIn(pathEnv)
	shim, err := look(shimBinary)
	if err != nil && d.ctrd != nil {
		if p := filepath.Join(filepath.Dir(strings.TrimSuffix(d.ctrd.exe, " (deleted)")), shimBinary); isExecutable(p) {
			shim, err = p, nil
		}
	}
	if err != nil {
		d.add("shim", StatusFail, "`sudo make install` (into /usr/local/bin), or put "+shimBinary+" on containerd's PATH",
			"containerd cannot start io.containerd.hostnet.v1: no %s on %s PATH (%s) or beside containerd", shimBinary, whose, pathEnv)
	} else {
		d.add("shim", StatusOK, "", "containerd starts %s", shim)
	}

	d.nodeConfig()
	if err != nil {
		return
	}
	name := d.node.Runtime.Binary
	if name == "" {
		name = ociruntime.DefaultBinary
	}
	rt, rerr := ociruntime.ResolveBinaryFrom(name, filepath.Dir(shim), look)
	if rerr != nil {
		d.add("runtime", StatusFail, "`sudo make install` puts hostnet-runc beside the shim; or set [runtime] binary in "+d.nodePath,
			"the shim cannot find its OCI runtime: %v", rerr)
		return
	}
	d.add("runtime", StatusOK, "", "the shim runs %s", rt)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p) //nolint:gosec // a directory of containerd's PATH, searched as exec.LookPath does
	return err == nil && !fi.IsDir() && fi.Mode().Perm()&0o111 != 0
}

// nodeConfig checks the node's hostnet configuration: the file
// HOSTNET_CONFIG names in this command's environment, else in
// containerd's, else /etc/containerd/hostnet.toml.
func (d *doctor) nodeConfig() {
	const check = "node-config"
	d.node = config.Defaults()
	fromEnv, where := os.Getenv(config.PathEnv), "this command's environment"
	if fromEnv == "" && d.ctrd != nil {
		fromEnv, _ = d.ctrd.getenv(config.PathEnv)
		where = "containerd's environment"
	}
	d.nodePath = config.DefaultPath
	if fromEnv != "" {
		d.nodePath = fromEnv
	}
	c, err := config.LoadNodeAt(fromEnv)
	if err == nil && c.Network.CNIConfList != "" {
		// The document only names the list; a create in bridge mode reads it.
		if _, lerr := cni.Load(c.Network.CNIConfList); lerr != nil {
			d.node = c
			d.add(check, StatusFail, "fix network.cni_conflist: until it loads, the shim refuses every bridge-mode container that has no config of its own", "%v", lerr)
			return
		}
	}
	switch {
	case err != nil:
		d.add(check, StatusFail, "fix "+d.nodePath+" (contrib/runtime-options.md): until it parses, the shim refuses every container that has no config of its own", "%v", err)
	case fromEnv != "":
		d.node = c
		d.add(check, StatusOK, "", "%s (%s=%s in %s) parses: %s", fromEnv, config.PathEnv, fromEnv, where, describeConfig(c))
	default:
		d.node = c
		if _, serr := os.Stat(config.DefaultPath); errors.Is(serr, fs.ErrNotExist) {
			d.add(check, StatusOK, "", "%s is absent: the defaults (%s)", config.DefaultPath, describeConfig(c))
		} else {
			d.add(check, StatusOK, "", "%s parses: %s", config.DefaultPath, describeConfig(c))
		}
	}
}

func describeConfig(c config.Config) string {
	n := c.Network
	s := fmt.Sprintf("default mode %s, bridge %s %s", n.DefaultMode, n.Bridge.Name, n.Bridge.Subnet)
	if n.CNIConfList != "" {
		s += ", bridge mode through CNI " + n.CNIConfList
	}
	if n.Hardened {
		s += ", hardened"
	}
	return s
}

// CRIRuntime is a runtime of containerd's CRI configuration.
type CRIRuntime struct {
	Handler        string
	RuntimeType    string
	PodAnnotations []string
	HasOptions     bool
	SystemdCgroup  bool
}

// CRIConfig is what hostnet needs to know of containerd's configuration.
type CRIConfig struct {
	Version  int
	Disabled bool // the CRI plugin is in disabled_plugins
	Runtimes []CRIRuntime
}

// ParseCRIConfig reads the CRI runtimes of a containerd configuration of
// version 1, 2 or 3.
func ParseCRIConfig(data []byte) (CRIConfig, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return CRIConfig{}, err
	}
	c := CRIConfig{Version: 1}
	if v, ok := doc["version"].(int64); ok {
		c.Version = int(v)
	}
	plugin := map[int]string{1: "cri", 2: "io.containerd.grpc.v1.cri", 3: "io.containerd.cri.v1.runtime"}[c.Version]
	if plugin == "" {
		return c, fmt.Errorf("unknown configuration version %d", c.Version)
	}
	if list, ok := doc["disabled_plugins"].([]any); ok {
		for _, p := range list {
			if s, _ := p.(string); s == plugin || s == "io.containerd.grpc.v1.cri" && c.Version == 3 || s == "cri" {
				c.Disabled = true
			}
		}
	}
	plugins, _ := doc["plugins"].(map[string]any)
	cri, _ := plugins[plugin].(map[string]any)
	ctrd, _ := cri["containerd"].(map[string]any)
	runtimes, _ := ctrd["runtimes"].(map[string]any)
	for handler, v := range runtimes {
		t, _ := v.(map[string]any)
		r := CRIRuntime{Handler: handler}
		r.RuntimeType, _ = t["runtime_type"].(string)
		if list, ok := t["pod_annotations"].([]any); ok {
			for _, a := range list {
				if s, ok := a.(string); ok {
					r.PodAnnotations = append(r.PodAnnotations, s)
				}
			}
		}
		if opts, ok := t["options"].(map[string]any); ok {
			r.HasOptions = true
			r.SystemdCgroup, _ = opts["SystemdCgroup"].(bool)
		}
		c.Runtimes = append(c.Runtimes, r)
	}
	sort.Slice(c.Runtimes, func(i, j int) bool { return c.Runtimes[i].Handler < c.Runtimes[j].Handler })
	return c, nil
}

// PassesAnnotation reports whether CRI passes a pod annotation key to the
// runtime, as containerd matches pod_annotations (glob patterns).
func (r CRIRuntime) PassesAnnotation(key string) bool {
	for _, p := range r.PodAnnotations {
		if ok, _ := path.Match(p, key); ok || p == key {
			return true
		}
	}
	return false
}

func (d *doctor) cri() {
	const check = "cri"
	file := d.o.ContainerdConfig
	if file == "" {
		file = DefaultContainerdConfig
		if d.ctrd != nil {
			file = d.ctrd.config
		}
	}
	data, err := os.ReadFile(file) //nolint:gosec // containerd's configuration
	if errors.Is(err, fs.ErrNotExist) {
		d.add(check, StatusWarn, "for Kubernetes, register the handler as README's \"Registering hostnet\" shows",
			"no containerd configuration %s: CRI has no hostnet handler (ctr and nerdctl need none)", file)
		return
	}
	if err != nil {
		d.add(check, StatusFail, "check the path (--containerd-config) and run as root", "%v", err)
		return
	}
	c, err := ParseCRIConfig(data)
	if err != nil {
		d.add(check, StatusFail, "fix the file: containerd does not start on it", "%s: %v", file, err)
		return
	}
	if c.Disabled {
		d.add(check, StatusOK, "", "%s: the CRI plugin is disabled (ctr and nerdctl need no handler)", file)
		return
	}
	found := false
	for _, r := range c.Runtimes {
		if r.SystemdCgroup && r.RuntimeType != runtimeType {
			d.criRunc = true
		}
		if r.RuntimeType != runtimeType {
			continue
		}
		found = true
		name := fmt.Sprintf("%s: CRI handler %q", file, r.Handler)
		switch {
		case !r.PassesAnnotation(spec.NetworkAnnotation):
			d.add(check, StatusFail, "add pod_annotations = ['hostnet.containerd.io/*'] to its runtimes table and restart containerd",
				"%s: pod_annotations %q do not pass %s: CRI drops it and every pod gets the default mode", name, r.PodAnnotations, spec.NetworkAnnotation)
		case r.HasOptions:
			d.add(check, StatusWarn, "move hostnet's settings into /etc/containerd/hostnet.toml and drop the options table (contrib/runtime-options.md#cri-kubernetes)",
				"%s has an options table: containerd 2.x cannot start user-namespaced pods on it", name)
		default:
			d.add(check, StatusOK, "", "%s runs %s and passes its pod annotations %q", name, runtimeType, r.PodAnnotations)
		}
	}
	if !found {
		d.add(check, StatusWarn, "for Kubernetes, register the handler as README's \"Registering hostnet\" shows",
			"%s: no CRI runtime has runtime_type %s (ctr and nerdctl need none; Kubernetes does)", file, runtimeType)
	}
}

// cgroups reports the cgroup version and the driver hostnet's runtime
// uses, and fails a systemd driver without systemd.
func (d *doctor) cgroups() {
	const check = "cgroup"
	version := "v1"
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		version = "v2 (unified)"
	} else if err := unix.Statfs("/sys/fs/cgroup/unified", &st); err == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		version = "v1 (hybrid)"
	}
	systemdRuns := false
	if fi, err := os.Stat("/run/systemd/system"); err == nil && fi.IsDir() {
		systemdRuns = true
	}
	driver := "cgroupfs"
	if d.node.Runtime.SystemdCgroup {
		driver = "systemd"
	}
	switch {
	case d.node.Runtime.SystemdCgroup && !systemdRuns:
		d.add(check, StatusFail, "set [runtime] systemd_cgroup = false in "+d.nodePath,
			"cgroup %s; driver systemd ([runtime] systemd_cgroup), but systemd is not this node's init: every create fails", version)
	case !d.node.Runtime.SystemdCgroup && d.criRunc:
		d.add(check, StatusWarn, "if the kubelet's cgroupDriver is systemd, set [runtime] systemd_cgroup = true in "+d.nodePath,
			"cgroup %s; driver cgroupfs, but CRI's runc runtimes use SystemdCgroup: pods on hostnet get a cgroupsPath they cannot use", version)
	default:
		d.add(check, StatusOK, "", "cgroup %s; driver %s", version, driver)
	}
}

// FailedChecks names the checks with a failure.
func FailedChecks(fs []Finding) []string {
	var out []string
	seen := map[string]bool{}
	for _, f := range fs {
		if f.Status == StatusFail && !seen[f.Check] {
			seen[f.Check] = true
			out = append(out, f.Check)
		}
	}
	return out
}
