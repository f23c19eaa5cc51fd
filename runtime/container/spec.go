package container

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/internal/hostns"
	"github.com/hostnet-dev/hostnet/runtime/rootfs"
	"github.com/hostnet-dev/hostnet/spec"
)

// LoadSpec reads and validates <bundle>/config.json. The errors name the file
// and the field, since containerd shows them to the user as they are.
func LoadSpec(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("JSON specification file %s not found", path)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var s specs.Spec
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if err := Validate(&s); err != nil {
		return nil, fmt.Errorf("invalid %s: %w", path, err)
	}
	return &s, nil
}

// Validate checks what the runtime relies on. Every runtime-spec 1.x version
// is accepted: fields added later are optional by the spec's own rules.
//
// It owns the checks of the spec's own values (absolute paths, non-empty
// args): the init receives the spec checked here over its sync socket,
// which nothing in the container can write to, and does not repeat them.
// What depends on the container's files (that the cwd can be entered and
// is inside the root, that args[0] is an executable there, where a mount
// target resolves) the init checks where it uses them, inside the
// container's mount namespace: an image could swap a path between a check
// made here and its use.
func Validate(s *specs.Spec) error {
	if !strings.HasPrefix(s.Version, "1.") {
		return fmt.Errorf("unsupported ociVersion %q: hostnet-runc implements runtime-spec 1.x", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return errors.New("root.path must be set")
	}
	if err := ValidateProcess(s.Process); err != nil {
		return err
	}
	if s.Linux == nil {
		return errors.New("linux must be set")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if _, ok := cloneFlags[ns.Type]; !ok && ns.Type != specs.CgroupNamespace && ns.Type != specs.TimeNamespace {
			return fmt.Errorf("namespace type %q is not supported", ns.Type)
		}
		if seen[ns.Type] {
			return fmt.Errorf("namespace %q is listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Type == specs.TimeNamespace && ns.Path != "" {
			return errors.New("joining an existing time namespace by path is not supported")
		}
	}
	if !seen[specs.MountNamespace] && s.Root.Readonly {
		// The remount would hit a mount the host shares.
		return errors.New("root.readonly needs a mount namespace of the container's own")
	}
	for _, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return fmt.Errorf("mount destination %q is not absolute", m.Destination)
		}
		if err := validateIDMap(s, m); err != nil {
			return fmt.Errorf("mount %s: %w", m.Destination, err)
		}
	}
	for _, d := range s.Linux.Devices {
		if !filepath.IsAbs(d.Path) {
			return fmt.Errorf("device path %q is not absolute", d.Path)
		}
	}
	// Refused rather than ignored: `features` says these are not
	// implemented, and a container without the limit or device it asked
	// for is not the container it asked for.
	switch {
	case s.Linux.IntelRdt != nil:
		return errors.New("linux.intelRdt is specified in config, but Intel RDT is not supported by hostnet-runc")
	case s.Linux.MemoryPolicy != nil:
		return errors.New("linux.memoryPolicy is specified in config, but memory policies are not supported by hostnet-runc")
	case len(s.Linux.NetDevices) > 0:
		return errors.New("linux.netDevices is specified in config, but moving network devices is not supported by hostnet-runc")
	}
	return spec.CheckSysctls(s, hostns.IsNetNS)
}

// ValidateProcess checks a process to run, the container's or one exec
// starts, as runc's validateProcessSpec does.
func ValidateProcess(p *specs.Process) error {
	if p == nil {
		return errors.New("process must be set")
	}
	if len(p.Args) == 0 {
		return errors.New("process.args must not be empty")
	}
	if p.Cwd == "" {
		return errors.New("process.cwd must not be empty")
	}
	if !filepath.IsAbs(p.Cwd) {
		return fmt.Errorf("process.cwd %q must be an absolute path", p.Cwd)
	}
	return nil
}

// validateIDMap checks an idmapped mount as runc does: a bind mount, with
// both uid and gid mappings of its own or, without any, a user namespace of
// the container's to take them from.
func validateIDMap(s *specs.Spec, m specs.Mount) error {
	opts := rootfs.ParseMountOptions(m.Options)
	if !rootfs.IDMapped(m, opts) {
		return nil
	}
	switch {
	case m.Type != "bind" && opts.Flags&unix.MS_BIND == 0:
		return errors.New("id-mapped mounts are only supported for bind-mounts")
	case !rootfs.IDMapSupported():
		return errors.New("id-mapped mounts need mount_setattr(2), which this kernel lacks (Linux 5.12 or later)")
	case m.UIDMappings == nil && m.GIDMappings == nil:
		if !spec.HasNamespace(s, specs.UserNamespace) {
			return errors.New("id-mapped mounts without uidMappings and gidMappings take the container's user namespace's, and it has none")
		}
	case len(m.UIDMappings) == 0 || len(m.GIDMappings) == 0:
		return errors.New("id-mapped mounts must have both uid and gid mappings specified")
	}
	return nil
}

// RootfsPath resolves root.path against the bundle.
func RootfsPath(bundle string, s *specs.Spec) (string, error) {
	p := s.Root.Path
	if !filepath.IsAbs(p) {
		p = filepath.Join(bundle, p)
	}
	p, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", fmt.Errorf("rootfs %s: %w", s.Root.Path, err)
	}
	return p, nil
}

var validID = regexp.MustCompile(`^[\w+.-]+$`)

// ValidateID refuses ids that could escape the state directory.
func ValidateID(id string) error {
	if id == "" {
		return errors.New("container id cannot be empty")
	}
	if !validID.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q", id)
	}
	return nil
}
