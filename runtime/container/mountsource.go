package container

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hostnet-dev/hostnet/runtime/rootfs"
)

// mountSources opens, on the host's side, the bind mount sources the init
// asks for while it builds the root (rootfs.Config.MountSource): idmapped
// trees, which only a process privileged over the source's filesystem can
// make, and sources the init cannot reach as an unprivileged uid on the
// host. As runc's mount source thread, it works from a thread that has
// joined the init's mount namespace but not its user namespace: sources
// resolve where the init's own binds would, and the clone of a mount
// keeps the flags that namespace locks.
type mountSources struct {
	spec   *specs.Spec
	bundle string // relative sources are relative to it
	pid    int    // the init
	// uidMaps and gidMaps are the container's user namespace's, nil
	// without one.
	uidMaps, gidMaps []specs.LinuxIDMapping
	hostMountNS      bool

	reqs     chan mountRequest
	startErr error
	proc     *procfs.Handle
	initNS   *os.File            // the init's user namespace, once opened
	helperNS map[string]*os.File // user namespaces of a mount's own mappings
}

type mountRequest struct {
	mount  specs.Mount
	opts   rootfs.MountOptions
	userns *os.File // for an idmapped mount
	reply  chan mountReply
}

type mountReply struct {
	file *os.File
	err  error
}

// open returns the source of the bind mount spec.Mounts[index], to be
// closed by the caller once sent.
func (m *mountSources) open(index int) (*os.File, error) {
	if index < 0 || index >= len(m.spec.Mounts) {
		return nil, fmt.Errorf("mount source %d requested: the spec has %d mounts", index, len(m.spec.Mounts))
	}
	req := mountRequest{mount: m.spec.Mounts[index], reply: make(chan mountReply, 1)}
	req.opts = rootfs.ParseMountOptions(req.mount.Options)
	if req.mount.Type != "bind" && req.opts.Flags&unix.MS_BIND == 0 {
		return nil, fmt.Errorf("mount source of %s requested: not a bind mount", req.mount.Destination)
	}
	if !filepath.IsAbs(req.mount.Source) {
		req.mount.Source = filepath.Join(m.bundle, req.mount.Source)
	}
	if m.reqs == nil && m.startErr == nil {
		m.startErr = m.start()
	}
	if m.startErr != nil {
		return nil, m.startErr
	}
	if rootfs.IDMapped(req.mount, req.opts) {
		var err error
		if req.userns, err = m.idmapUserNS(req.mount); err != nil {
			return nil, err
		}
	}
	m.reqs <- req
	r := <-req.reply
	return r.file, r.err
}

// start runs the thread that opens the sources, in the init's mount
// namespace. The thread is never unlocked: Go ends it with its goroutine
// instead of running anything else there.
func (m *mountSources) start() error {
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return fmt.Errorf("open procfs: %w", err)
	}
	m.proc = proc
	var mntns *os.File
	if !m.hostMountNS {
		if mntns, err = openNamespace(m.pid, "mnt"); err != nil {
			return err
		}
		defer mntns.Close()
	}
	reqs := make(chan mountRequest)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if mntns != nil {
			if err := unix.Unshare(unix.CLONE_FS); err != nil {
				errc <- fmt.Errorf("mount sources: unshare fs: %w", err)
				return
			}
			if err := unix.Setns(int(mntns.Fd()), unix.CLONE_NEWNS); err != nil {
				errc <- fmt.Errorf("mount sources: join the container's mount namespace: %w", err)
				return
			}
		}
		errc <- nil
		for req := range reqs {
			f, err := openSource(req)
			req.reply <- mountReply{file: f, err: err}
		}
	}()
	if err := <-errc; err != nil {
		return err
	}
	m.reqs = reqs
	return nil
}

// openSource opens a source on the thread of start, in the container's
// mount namespace.
func openSource(req mountRequest) (*os.File, error) {
	if req.userns != nil {
		return rootfs.IDMappedTree(req.mount.Source, req.opts, req.userns)
	}
	f, err := os.OpenFile(req.mount.Source, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bind source: %w", err)
	}
	return f, nil
}

// idmapUserNS is the user namespace whose mappings an idmapped mount
// takes: the container's, when the mount has none of its own or the same,
// else one made for them (and kept for other mounts with the same).
func (m *mountSources) idmapUserNS(mnt specs.Mount) (*os.File, error) {
	uid, gid := mnt.UIDMappings, mnt.GIDMappings
	own := uid == nil && gid == nil
	if own && m.uidMaps == nil {
		return nil, fmt.Errorf("mount %s: idmap without mappings of its own needs a user namespace of the container's", mnt.Destination)
	}
	if own || slices.Equal(uid, m.uidMaps) && slices.Equal(gid, m.gidMaps) {
		if m.initNS == nil {
			ns, err := openNamespace(m.pid, "user")
			if err != nil {
				return nil, err
			}
			m.initNS = ns
		}
		return m.initNS, nil
	}
	key := string(idMapFile(uid)) + "/" + string(idMapFile(gid))
	if ns, ok := m.helperNS[key]; ok {
		return ns, nil
	}
	ns, err := newUserNamespace(m.proc, uid, gid)
	if err != nil {
		return nil, fmt.Errorf("mount %s: user namespace for its mappings: %w", mnt.Destination, err)
	}
	if m.helperNS == nil {
		m.helperNS = map[string]*os.File{}
	}
	m.helperNS[key] = ns
	return ns, nil
}

// close ends the thread and releases what the sources needed.
func (m *mountSources) close() {
	if m.reqs != nil {
		close(m.reqs)
	}
	if m.initNS != nil {
		m.initNS.Close()
	}
	for _, ns := range m.helperNS {
		ns.Close()
	}
	if m.proc != nil {
		m.proc.Close()
	}
}

// openNamespace opens the namespace file /proc/<pid>/ns/<name> of a child
// of ours (its pid cannot be reused). The procfs handles cannot follow
// these magic links, so this goes through the runtime's /proc, the host's
// (create's main thread joins no mount namespace), as runc does.
func openNamespace(pid int, name string) (*os.File, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/" + name)
	if err != nil {
		return nil, fmt.Errorf("open %s namespace of process %d: %w", name, pid, err)
	}
	return f, nil
}

// errNoMountSources is what the init gets when it asks an exec for a
// mount source.
var errNoMountSources = errors.New("no mount sources for an exec")
