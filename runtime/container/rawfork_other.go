//go:build linux && !(amd64 || arm64 || riscv64 || ppc64le || loong64)

package container

import (
	"errors"
	"os"
)

// rawForkSupported is false where the raw clone(2) in forkExec has not been
// checked (s390x swaps its arguments): exec then forks with os/exec and
// cannot join a user namespace.
const rawForkSupported = false

func forkExec(userns, exe *os.File, argv, env []string, setsid bool, keep []*os.File) (*os.Process, error) {
	return nil, errors.New("exec into a container's user namespace is not supported on this architecture")
}
