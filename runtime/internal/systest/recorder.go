// Package systest is the recording double of the init's system calls
// (rootfs.Syscalls, initproc.Syscalls): it logs each call, in order, as one
// readable line and changes nothing, so tests can check what the init
// decides to mount, mask, drop and set, and in which order, without root.
// It is a test helper: nothing the runtime's binary links imports it.
//
// Everything around the calls stays real: targets are resolved and created
// in a directory of the test's (Root), through the same descriptors as in a
// container, and the log names them by where those descriptors lead.
package systest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/moby/sys/capability"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/seccomp"
)

// Recorder logs system calls instead of making them.
type Recorder struct {
	// Root is the container's root directory, with symlinks resolved.
	// Paths inside it are logged from it ("/dev/null"), other absolute
	// paths of the host as "host:/path". OpenRoot opens it, and Stat
	// resolves in it once a pivot_root or chroot was logged.
	Root string
	// Fail makes calls fail: a call whose log line starts with a key
	// returns that key's error (and is logged with it).
	Fail map[string]error
	// Wd, when set, is what Getwd returns, else the directory of the
	// last chdir.
	Wd string

	mu      sync.Mutex
	calls   []string
	pivoted bool
	cwd     string
	umask   int
}

// New returns a Recorder for the container root at root.
func New(root string) (*Recorder, error) {
	real, err := filepath.EvalSymlinks(root)
	if err != nil {
		return nil, err
	}
	return &Recorder{Root: real, umask: 0o022}, nil
}

// Calls returns the log.
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Matching returns the log lines that start with one of prefixes.
func (r *Recorder) Matching(prefixes ...string) []string {
	var out []string
	for _, c := range r.Calls() {
		for _, p := range prefixes {
			if strings.HasPrefix(c, p) {
				out = append(out, c)
				break
			}
		}
	}
	return out
}

// Log adds a line of the test's own, e.g. what a fake parent was asked.
func (r *Recorder) Log(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, fmt.Sprintf(format, args...))
}

// call logs a call and returns the error Fail gives it.
func (r *Recorder) call(format string, args ...any) error {
	line := fmt.Sprintf(format, args...)
	var err error
	for prefix, e := range r.Fail {
		if strings.HasPrefix(line, prefix) {
			err = e
			line += " = " + errName(e)
			break
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, line)
	return err
}

func errName(err error) string {
	var errno unix.Errno
	if errors.As(err, &errno) {
		if name := unix.ErrnoName(errno); name != "" {
			return name
		}
	}
	return err.Error()
}

// fdPath names what the descriptor fd leads to.
func (r *Recorder) fdPath(fd int) string {
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd)) // procfs-literal: the test process's own descriptors
	if err != nil {
		return "fd:" + strconv.Itoa(fd)
	}
	if name, ok := strings.CutPrefix(link, "/memfd:"); ok {
		return strings.TrimSuffix(name, " (deleted)") // one of ours: a detached mount
	}
	return r.hostPath(link)
}

// hostPath names an absolute path of the test's filesystem.
func (r *Recorder) hostPath(p string) string {
	switch {
	case p == r.Root:
		return "/"
	case strings.HasPrefix(p, r.Root+"/"):
		return strings.TrimPrefix(p, r.Root)
	case strings.HasPrefix(p, "/"):
		return "host:" + p
	}
	return p
}

// path names a path argument: a /proc/self/fd link by its descriptor, a
// path before pivot_root as the host's, one after it as the container's.
func (r *Recorder) path(p string) string {
	if fd, ok := strings.CutPrefix(p, "/proc/self/fd/"); ok { // procfs-literal: recognizes the runtime's magic links
		if n, err := strconv.Atoi(fd); err == nil {
			return r.fdPath(n)
		}
	}
	if p == "" {
		return "none"
	}
	r.mu.Lock()
	pivoted := r.pivoted
	r.mu.Unlock()
	if pivoted {
		return p
	}
	return r.hostPath(p)
}

// detached returns a real descriptor standing for a detached mount, so
// that the caller can close it and later calls can name it.
func detached(name string) (int, error) {
	return unix.MemfdCreate(name, unix.MFD_CLOEXEC)
}

// flag names a bit of a flag word.
type flag[T ~int | ~uint64 | ~uintptr] struct {
	bit  T
	name string
}

// flagNames names the bits of flags from table, in its order, and what
// is left in hex; "0" for none.
func flagNames[T ~int | ~uint64 | ~uintptr](flags T, table []flag[T]) string {
	var names []string
	for _, f := range table {
		if flags&f.bit != 0 {
			names = append(names, f.name)
			flags &^= f.bit
		}
	}
	if flags != 0 {
		names = append(names, fmt.Sprintf("%#x", uint64(flags)))
	}
	if len(names) == 0 {
		return "0"
	}
	return strings.Join(names, "|")
}

var mountFlags = []flag[uintptr]{
	{unix.MS_RDONLY, "MS_RDONLY"}, {unix.MS_NOSUID, "MS_NOSUID"}, {unix.MS_NODEV, "MS_NODEV"},
	{unix.MS_NOEXEC, "MS_NOEXEC"}, {unix.MS_SYNCHRONOUS, "MS_SYNCHRONOUS"}, {unix.MS_REMOUNT, "MS_REMOUNT"},
	{unix.MS_MANDLOCK, "MS_MANDLOCK"}, {unix.MS_DIRSYNC, "MS_DIRSYNC"}, {unix.MS_NOSYMFOLLOW, "MS_NOSYMFOLLOW"},
	{unix.MS_NOATIME, "MS_NOATIME"}, {unix.MS_NODIRATIME, "MS_NODIRATIME"}, {unix.MS_BIND, "MS_BIND"},
	{unix.MS_MOVE, "MS_MOVE"}, {unix.MS_REC, "MS_REC"}, {unix.MS_SILENT, "MS_SILENT"},
	{unix.MS_UNBINDABLE, "MS_UNBINDABLE"}, {unix.MS_PRIVATE, "MS_PRIVATE"}, {unix.MS_SLAVE, "MS_SLAVE"},
	{unix.MS_SHARED, "MS_SHARED"}, {unix.MS_RELATIME, "MS_RELATIME"}, {unix.MS_I_VERSION, "MS_I_VERSION"},
	{unix.MS_STRICTATIME, "MS_STRICTATIME"}, {unix.MS_LAZYTIME, "MS_LAZYTIME"},
}

// MountFlags names mount(2) flags as the log shows them.
func MountFlags(flags uintptr) string { return flagNames(flags, mountFlags) }

var mountAttrs = []flag[uint64]{
	{unix.MOUNT_ATTR_RDONLY, "RDONLY"}, {unix.MOUNT_ATTR_NOSUID, "NOSUID"}, {unix.MOUNT_ATTR_NODEV, "NODEV"},
	{unix.MOUNT_ATTR_NOEXEC, "NOEXEC"}, {unix.MOUNT_ATTR_NOATIME, "NOATIME"},
	{unix.MOUNT_ATTR_STRICTATIME, "STRICTATIME"}, {unix.MOUNT_ATTR_NODIRATIME, "NODIRATIME"},
	{unix.MOUNT_ATTR_IDMAP, "IDMAP"}, {unix.MOUNT_ATTR_NOSYMFOLLOW, "NOSYMFOLLOW"},
}

var namespaceFlags = []flag[int]{
	{unix.CLONE_NEWNS, "CLONE_NEWNS"}, {unix.CLONE_NEWCGROUP, "CLONE_NEWCGROUP"}, {unix.CLONE_NEWUTS, "CLONE_NEWUTS"},
	{unix.CLONE_NEWIPC, "CLONE_NEWIPC"}, {unix.CLONE_NEWUSER, "CLONE_NEWUSER"}, {unix.CLONE_NEWPID, "CLONE_NEWPID"},
	{unix.CLONE_NEWNET, "CLONE_NEWNET"}, {unix.CLONE_NEWTIME, "CLONE_NEWTIME"},
}

func recursive(flags uint) string {
	if flags&unix.AT_RECURSIVE != 0 {
		return " recursive"
	}
	return ""
}

// Mount logs "mount SOURCE on TARGET [type FSTYPE] (FLAGS)[ DATA]".
func (r *Recorder) Mount(source, target, fstype string, flags uintptr, data string) error {
	line := fmt.Sprintf("mount %s on %s", r.path(source), r.path(target))
	if fstype != "" {
		line += " type " + fstype
	}
	line += " (" + MountFlags(flags) + ")"
	if data != "" {
		line += " " + data
	}
	return r.call("%s", line)
}

// Unmount logs "umount2 TARGET FLAGS".
func (r *Recorder) Unmount(target string, flags int) error {
	if flags == unix.MNT_DETACH {
		return r.call("umount2 %s MNT_DETACH", r.path(target))
	}
	return r.call("umount2 %s %#x", r.path(target), flags)
}

// OpenTree logs "open_tree SOURCE[ recursive]" and returns a detached
// mount named "tree:SOURCE".
func (r *Recorder) OpenTree(dirfd int, path string, flags uint) (int, error) {
	src := r.fdPath(dirfd)
	if path != "" {
		src = r.path(path)
	}
	if err := r.call("open_tree %s%s", src, recursive(flags)); err != nil {
		return -1, err
	}
	return detached("tree:" + src)
}

// MoveMount logs "move_mount FROM on TO".
func (r *Recorder) MoveMount(fromDirfd int, _ string, toDirfd int, _ string, _ int) error {
	return r.call("move_mount %s on %s", r.fdPath(fromDirfd), r.fdPath(toDirfd))
}

// MountSetattr logs "mount_setattr TARGET[ set=ATTRS][ clear=ATTRS][ recursive]".
func (r *Recorder) MountSetattr(dirfd int, _ string, flags uint, attr unix.MountAttr) error {
	line := "mount_setattr " + r.fdPath(dirfd)
	if attr.Attr_set != 0 {
		line += " set=" + flagNames(attr.Attr_set, mountAttrs)
	}
	if attr.Attr_clr != 0 {
		line += " clear=" + flagNames(attr.Attr_clr, mountAttrs)
	}
	return r.call("%s%s", line, recursive(flags))
}

// Fsopen logs "fsopen FSTYPE" and returns a context named "fs:FSTYPE".
func (r *Recorder) Fsopen(fsName string, _ int) (int, error) {
	if err := r.call("fsopen %s", fsName); err != nil {
		return -1, err
	}
	return detached("fs:" + fsName)
}

// FsconfigCreate logs "fsconfig create CONTEXT".
func (r *Recorder) FsconfigCreate(fd int) error {
	return r.call("fsconfig create %s", r.fdPath(fd))
}

// Fsmount logs "fsmount FSTYPE ATTRS" and returns a mount named FSTYPE.
func (r *Recorder) Fsmount(fd int, _ int, attrs int) (int, error) {
	fs := strings.TrimPrefix(r.fdPath(fd), "fs:")
	if err := r.call("fsmount %s %s", fs, flagNames(uint64(attrs), mountAttrs)); err != nil {
		return -1, err
	}
	return detached(fs)
}

// PivotRoot logs "pivot_root NEW OLD".
func (r *Recorder) PivotRoot(newroot, putold string) error {
	if err := r.call("pivot_root %s %s", newroot, putold); err != nil {
		return err
	}
	r.mu.Lock()
	r.pivoted, r.cwd = true, "/"
	r.mu.Unlock()
	return nil
}

// Chroot logs "chroot PATH".
func (r *Recorder) Chroot(path string) error {
	if err := r.call("chroot %s", path); err != nil {
		return err
	}
	r.mu.Lock()
	r.pivoted, r.cwd = true, "/"
	r.mu.Unlock()
	return nil
}

// Chdir logs "chdir PATH".
func (r *Recorder) Chdir(path string) error {
	p := r.path(path)
	if err := r.call("chdir %s", p); err != nil {
		return err
	}
	r.mu.Lock()
	if strings.HasPrefix(p, "/") {
		r.cwd = p
	} else {
		r.cwd = filepath.Join(r.cwd, p)
	}
	r.mu.Unlock()
	return nil
}

// Fchdir logs "fchdir PATH".
func (r *Recorder) Fchdir(fd int) error { return r.call("fchdir %s", r.fdPath(fd)) }

// Mknodat logs "mknod PATH TYPE MAJOR:MINOR MODE".
func (r *Recorder) Mknodat(dirfd int, path string, mode uint32, dev int) error {
	kind := "?"
	switch mode & unix.S_IFMT {
	case unix.S_IFCHR:
		kind = "c"
	case unix.S_IFBLK:
		kind = "b"
	case unix.S_IFIFO:
		kind = "p"
	}
	return r.call("mknod %s %s %d:%d %04o", filepath.Join(r.fdPath(dirfd), path), kind,
		unix.Major(uint64(dev)), unix.Minor(uint64(dev)), mode&0o7777)
}

// Fchownat logs "chown PATH UID:GID".
func (r *Recorder) Fchownat(dirfd int, path string, uid, gid, _ int) error {
	return r.call("chown %s %d:%d", filepath.Join(r.fdPath(dirfd), path), uid, gid)
}

// OpenRoot opens Root.
func (r *Recorder) OpenRoot() (*os.File, error) {
	return os.OpenFile(r.Root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// Umask logs "umask MODE".
func (r *Recorder) Umask(mask int) int {
	_ = r.call("umask %04o", mask)
	r.mu.Lock()
	defer r.mu.Unlock()
	old := r.umask
	r.umask = mask
	return old
}

// Unshare logs "unshare FLAGS".
func (r *Recorder) Unshare(flags int) error {
	return r.call("unshare %s", flagNames(flags, namespaceFlags))
}

// Sethostname logs "sethostname NAME".
func (r *Recorder) Sethostname(name string) error { return r.call("sethostname %s", name) }

// Setdomainname logs "setdomainname NAME".
func (r *Recorder) Setdomainname(name string) error { return r.call("setdomainname %s", name) }

// JoinSessionKeyring logs "keyctl join NAME".
func (r *Recorder) JoinSessionKeyring(name string) error { return r.call("keyctl join %s", name) }

// BringUpLoopback logs "lo up".
func (r *Recorder) BringUpLoopback() error { return r.call("lo up") }

// WriteProcFile logs "write PATH VALUE", the value quoted.
func (r *Recorder) WriteProcFile(path, value string) error {
	return r.call("write %s %q", path, value)
}

// CloseExecFrom logs "cloexec FIRST..".
func (r *Recorder) CloseExecFrom(first int) error { return r.call("cloexec %d..", first) }

// Prlimit logs "prlimit RESOURCE SOFT HARD".
func (r *Recorder) Prlimit(resource int, limit unix.Rlimit) error {
	return r.call("prlimit %d %d %d", resource, limit.Cur, limit.Max)
}

// Personality logs "personality PERSONA".
func (r *Recorder) Personality(persona uintptr) error { return r.call("personality %#x", persona) }

// SchedSetAttr logs "sched_setattr policy=P nice=N priority=P flags=F".
func (r *Recorder) SchedSetAttr(a unix.SchedAttr) error {
	return r.call("sched_setattr policy=%d nice=%d priority=%d flags=%#x", a.Policy, a.Nice, a.Priority, a.Flags)
}

// IoprioSet logs "ioprio_set class=C level=L".
func (r *Recorder) IoprioSet(prio int) error {
	return r.call("ioprio_set class=%d level=%d", prio>>13, prio&(1<<13-1))
}

// Setgroups logs "setgroups GIDS".
func (r *Recorder) Setgroups(gids []int) error { return r.call("setgroups %v", gids) }

// Setresgid logs "setresgid GID".
func (r *Recorder) Setresgid(gid int) error { return r.call("setresgid %d", gid) }

// Setresuid logs "setresuid UID".
func (r *Recorder) Setresuid(uid int) error { return r.call("setresuid %d", uid) }

// SetKeepCaps logs "keepcaps on" or "keepcaps off".
func (r *Recorder) SetKeepCaps(keep bool) error {
	if keep {
		return r.call("keepcaps on")
	}
	return r.call("keepcaps off")
}

// SetNoNewPrivs logs "no_new_privs".
func (r *Recorder) SetNoNewPrivs() error { return r.call("no_new_privs") }

// Caps names capabilities as the log shows them: "CAP_CHOWN,CAP_KILL",
// "none" for none.
func Caps(caps []capability.Cap) string {
	if len(caps) == 0 {
		return "none"
	}
	names := make([]string, len(caps))
	for i, c := range caps {
		names[i] = "CAP_" + strings.ToUpper(c.String())
	}
	return strings.Join(names, ",")
}

// SetBounding logs "bounding CAPS".
func (r *Recorder) SetBounding(keep []capability.Cap) error { return r.call("bounding %s", Caps(keep)) }

// SetCapabilities logs "capset effective=CAPS permitted=CAPS inheritable=CAPS".
func (r *Recorder) SetCapabilities(effective, permitted, inheritable []capability.Cap) error {
	return r.call("capset effective=%s permitted=%s inheritable=%s", Caps(effective), Caps(permitted), Caps(inheritable))
}

// ResetAmbient logs "ambient reset".
func (r *Recorder) ResetAmbient() error { return r.call("ambient reset") }

// RaiseAmbient logs "ambient raise CAP".
func (r *Recorder) RaiseAmbient(c capability.Cap) error {
	return r.call("ambient raise %s", Caps([]capability.Cap{c}))
}

// LoadSeccomp logs "seccomp load"; it hands out no listener.
func (r *Recorder) LoadSeccomp(*seccomp.Filter) (int, error) {
	if err := r.call("seccomp load"); err != nil {
		return -1, err
	}
	return -1, nil
}

// Getwd logs "getwd" and returns Wd, or the directory of the last chdir.
func (r *Recorder) Getwd() (string, error) {
	if err := r.call("getwd"); err != nil {
		return "", err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.Wd != "" {
		return r.Wd, nil
	}
	return r.cwd, nil
}

// Stat stats path in Root once the root was changed, else on the host.
// It is not logged: it only looks.
func (r *Recorder) Stat(path string) (os.FileInfo, error) {
	r.mu.Lock()
	pivoted, cwd := r.pivoted, r.cwd
	r.mu.Unlock()
	if !pivoted {
		return os.Stat(path)
	}
	if !strings.HasPrefix(path, "/") {
		path = filepath.Join(cwd, path)
	}
	fi, err := os.Stat(filepath.Join(r.Root, path))
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: errors.Unwrap(err)}
	}
	return fi, nil
}
