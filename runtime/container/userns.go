package container

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// joinedUserNamespace returns the id mappings of the user namespace the
// init joined by path, as the host sees them. A spec may repeat them
// (containerd's CRI does), but they must be the namespace's: a joined
// namespace's mappings cannot be changed, and ids computed from others
// (the exec fifo's owner, idmapped mounts) would be wrong. runc refuses
// the same spec with the same words.
func joinedUserNamespace(pid int, s *specs.Spec) (uid, gid []specs.LinuxIDMapping, err error) {
	proc, err := procfs.OpenProcRoot()
	if err != nil {
		return nil, nil, fmt.Errorf("open procfs: %w", err)
	}
	defer proc.Close()
	if uid, err = readIDMap(proc, pid, "uid_map"); err != nil {
		return nil, nil, err
	}
	if gid, err = readIDMap(proc, pid, "gid_map"); err != nil {
		return nil, nil, err
	}
	if (s.Linux.UIDMappings != nil || s.Linux.GIDMappings != nil) &&
		(!slices.Equal(uid, s.Linux.UIDMappings) || !slices.Equal(gid, s.Linux.GIDMappings)) {
		return nil, nil, fmt.Errorf("user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one (the namespace maps uids %v and gids %v)", uid, gid)
	}
	return uid, gid, nil
}

// readIDMap reads /proc/<pid>/<name> (uid_map or gid_map).
func readIDMap(proc *procfs.Handle, pid int, name string) ([]specs.LinuxIDMapping, error) {
	f, err := openPidFile(proc, pid, name, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s of process %d: %w", name, pid, err)
	}
	m, err := parseIDMap(data)
	if err != nil {
		return nil, fmt.Errorf("%s of process %d: %w", name, pid, err)
	}
	return m, nil
}

// parseIDMap parses the "inside outside count" lines of a uid_map or
// gid_map file.
func parseIDMap(data []byte) ([]specs.LinuxIDMapping, error) {
	var out []specs.LinuxIDMapping
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var m specs.LinuxIDMapping
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %d", &m.ContainerID, &m.HostID, &m.Size); err != nil {
			return nil, fmt.Errorf("invalid id map line %q: %w", sc.Text(), err)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		return nil, errors.New("empty id map")
	}
	return out, sc.Err()
}
