//go:build linux && !(amd64 || arm64 || riscv64 || ppc64le || loong64)

package container

import (
	"errors"
	"os"
	"strconv"
	"syscall"

	"github.com/cyphar/filepath-securejoin/pathrs-lite/procfs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// forkExec, where the raw clone(2) in rawfork.go has not been checked
// (s390x swaps its arguments), starts the process with syscall.ForkExec,
// by the /proc/self/fd path of the sealed binary (in a mount namespace
// joined by path, that /proc is the container's), and cannot join a user
// namespace. Nor can it lower the child's capabilities before the exec
// (rawfork.go's dropReadCaps): there, root's init is dumpable until its
// main's prctl.
func forkExec(f *forkSpec) (*os.Process, error) {
	if f.userns != nil {
		return nil, errors.New("joining a container's user namespace is not supported on this architecture")
	}
	// Every descriptor keeps its number: stdio, the caller's and ours.
	var files []uintptr
	for fd := 0; fd < 3+f.preserved; fd++ {
		files = append(files, uintptr(fd))
	}
	for _, k := range f.keep {
		for len(files) <= int(k.Fd()) {
			files = append(files, ^uintptr(0))
		}
		files[k.Fd()] = k.Fd()
	}
	attr := &syscall.SysProcAttr{Setsid: f.setsid, Cloneflags: f.cloneFlags}
	if f.cloneFlags&syscall.CLONE_NEWUSER != 0 {
		attr.UidMappings, attr.GidMappings = sysIDMaps(f.uidMaps), sysIDMaps(f.gidMaps)
		attr.GidMappingsEnableSetgroups = true
		attr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
	}
	pid, err := syscall.ForkExec("/proc/self/fd/"+strconv.Itoa(int(f.exe.Fd())), f.argv, // procfs-literal: fallback where rawfork.go is unchecked; its limit is said above
		&syscall.ProcAttr{Env: f.env, Files: files, Sys: attr})
	if err != nil {
		return nil, err
	}
	return os.FindProcess(pid)
}

func sysIDMaps(in []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, len(in))
	for i, m := range in {
		out[i] = syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)}
	}
	return out
}

// newUserNamespace needs the raw clone of rawfork.go, which is not checked
// on this architecture: idmapped mounts are refused here.
func newUserNamespace(*procfs.Handle, []specs.LinuxIDMapping, []specs.LinuxIDMapping) (*os.File, error) {
	return nil, errors.New("idmapped mounts are not supported on this architecture: the runtime cannot make their user namespace")
}
