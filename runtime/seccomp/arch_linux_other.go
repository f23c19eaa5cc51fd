//go:build linux && !amd64 && !arm64

package seccomp

// The compiler only knows the syscall tables of amd64 and arm64; elsewhere
// Compile reports the architecture as unsupported (nativeAuditArch == 0).
const (
	nativeAuditArch = 0
	x32SyscallBit   = 0
)

var syscallNumbers = map[string]uint32{}
