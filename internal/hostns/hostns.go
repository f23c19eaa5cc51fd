// Package hostns tells whether a namespace a spec joins by path is the
// host's, for the shim and the runtime alike. It imports x/sys/unix only:
// the runtime binary, which runs several times per container, links it.
package hostns

import (
	"os"

	"golang.org/x/sys/unix"
)

// IsNetNS reports whether the network namespace at path is the calling
// process's own, the host's for the shim and the runtime: a container
// joining it by path shares the host's network as much as one in host
// mode does. Namespaces are compared by nsfs device and inode, as the
// kernel identifies them.
func IsNetNS(path string) (bool, error) {
	var self, ns unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil { // procfs-literal: the caller's own, in the host's mount namespace
		return false, &os.PathError{Op: "stat", Path: "/proc/self/ns/net", Err: err} // procfs-literal: an error message
	}
	if err := unix.Stat(path, &ns); err != nil {
		return false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return self.Dev == ns.Dev && self.Ino == ns.Ino, nil
}
