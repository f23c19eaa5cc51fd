package seccomp

import "golang.org/x/sys/unix"

const (
	// nativeAuditArch is the seccomp_data.arch value of native syscalls.
	nativeAuditArch = unix.AUDIT_ARCH_X86_64

	// x32SyscallBit marks x32 ABI syscalls, which the kernel reports with
	// arch == AUDIT_ARCH_X86_64. Without an explicit check an x32 call would
	// simply miss every rule and get the default action, letting a process
	// step around a deny-list profile (__X32_SYSCALL_BIT in asm/unistd.h).
	x32SyscallBit = 0x40000000
)
