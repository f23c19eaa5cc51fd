package seccomp

import "golang.org/x/sys/unix"

const (
	// nativeAuditArch is the seccomp_data.arch value of native syscalls.
	nativeAuditArch = unix.AUDIT_ARCH_AARCH64

	// x32SyscallBit is zero: arm64 has no x32-style sub-ABI sharing the
	// native audit arch.
	x32SyscallBit = 0
)
