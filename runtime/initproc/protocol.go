// Package initproc is the container's init: the code that runs inside the
// new namespaces, prepares the root filesystem and the process attributes,
// waits for `start` and then execs the user's process.
//
// The parent (`hostnet-runc create`) and the init talk over a socketpair with
// newline-delimited JSON: the parent sends one Bootstrap, the init answers with
// one Reply. The file descriptor numbers below are fixed by the parent when it
// spawns the init.
package initproc

import specs "github.com/opencontainers/runtime-spec/specs-go"

// Command is the hidden subcommand that runs the init.
const Command = "init"

// Bootstrap is everything the init needs. The parent sends the spec it has
// already validated instead of letting the init re-read config.json, so what
// was checked is what runs: the init relies on container.Validate (create)
// and container.ValidateProcess (exec) for the spec's own values, and
// checks only what depends on the container's files, where it uses them.
type Bootstrap struct {
	Spec *specs.Spec `json:"spec"`
	// Rootfs is the absolute host path of the container's root.
	Rootfs string `json:"rootfs"`
	// Exec starts an additional process in a running container: the parent
	// has already joined the container's namespaces, so there is no rootfs
	// to build, and the process runs as soon as it is ready.
	Exec bool `json:"exec,omitempty"`
	// NoPivot uses MS_MOVE+chroot instead of pivot_root (for ramfs roots).
	NoPivot bool `json:"noPivot,omitempty"`
	// NoNewKeyring keeps the caller's session keyring.
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	// CgroupPaths maps each v1 hierarchy (or "" on v2) to the container's
	// cgroup directory on the host, for the cgroup mount inside the container.
	CgroupPaths map[string]string `json:"cgroupPaths,omitempty"`
	// Fds are the descriptor numbers the parent passed down.
	Fds Fds `json:"fds"`
	// State is the container's state as hooks see it (the init's pid in the
	// runtime's pid namespace, which the init cannot know itself).
	State *specs.State `json:"state,omitempty"`
}

// Fds are descriptor numbers in the init, -1 when absent.
type Fds struct {
	// ExecFifo is an O_PATH descriptor of <state>/exec.fifo: opening it for
	// writing blocks until `start` opens it for reading.
	ExecFifo int `json:"execFifo"`
	// ConsoleSocket is a connected unix socket to send the pty master over.
	ConsoleSocket int `json:"consoleSocket"`
	// Preserved is the number of caller fds (from 3 on) kept for the process.
	Preserved int `json:"preserved"`
}

// Reply is a message from the init: ready to exec, why it cannot, a
// request to run the prestart and createRuntime hooks now that the mounts
// are in place (they run in the runtime's namespaces, so the parent runs
// them and answers with a HookResult), or a request for the source of the
// bind mount Spec.Mounts[*MountSource], which the parent answers with
// SendMountSource, or the number of the seccomp listener the init just
// created, which the parent takes with pidfd_getfd(2) and answers with a
// SeccompFdResult before it sends it to the agent at listenerPath.
type Reply struct {
	Ready       bool   `json:"ready,omitempty"`
	Error       string `json:"error,omitempty"`
	Hooks       bool   `json:"hooks,omitempty"`
	MountSource *int   `json:"mountSource,omitempty"`
	SeccompFd   *int   `json:"seccompFd,omitempty"`
}

// SeccompFdResult tells the init the parent has its listener (Error
// empty) or why it could not take it.
type SeccompFdResult struct {
	Error string `json:"error,omitempty"`
}

// HookResult answers a hooks request; Error is empty on success.
type HookResult struct {
	Error string `json:"error,omitempty"`
}

// SyncFdEnv names the init's end of the socketpair in its environment.
const SyncFdEnv = "_HOSTNET_INIT_SYNCFD"
