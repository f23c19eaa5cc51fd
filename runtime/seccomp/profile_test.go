package seccomp

import (
	"runtime"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultLikeAllowed has the shape of the allow list in containerd's and
// Docker's default profiles: ~350 names, some of which only exist on 32-bit
// or other architectures and must come back as warnings.
const defaultLikeAllowed = `
accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown chown32
clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime clock_gettime64
clock_nanosleep clock_nanosleep_time64 close close_range connect copy_file_range creat dup dup2
dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_pwait2 epoll_wait
epoll_wait_old eventfd eventfd2 execve execveat exit exit_group faccessat faccessat2 fadvise64
fadvise64_64 fallocate fanotify_mark fchdir fchmod fchmodat fchmodat2 fchown fchown32 fchownat
fcntl fcntl64 fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64
fstatat64 fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futex_requeue futex_time64
futex_wait futex_waitv futex_wake futimesat getcpu getcwd getdents getdents64 getegid getegid32
geteuid geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp
getpid getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
get_robust_list getrusage getsid getsockname getsockopt get_thread_area gettid gettimeofday
getuid getuid32 getxattr inotify_add_watch inotify_init inotify_init1 inotify_rm_watch
io_cancel ioctl io_destroy io_getevents io_pgetevents io_pgetevents_time64 ioprio_get
ioprio_set io_setup io_submit ipc kill landlock_add_rule landlock_create_ruleset
landlock_restrict_self lchown lchown32 lgetxattr link linkat listen listxattr llistxattr
_llseek lremovexattr lseek lsetxattr lstat lstat64 madvise map_shadow_stack membarrier
memfd_create memfd_secret mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2
mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend
mq_timedsend_time64 mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall
munmap name_to_handle_at nanosleep newfstatat _newselect open openat openat2 pause pidfd_open
pidfd_send_signal pipe pipe2 pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl
pread64 preadv preadv2 prlimit64 process_mrelease pselect6 pselect6_time64 pwrite64 pwritev
pwritev2 read readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64
recvmsg remap_file_pages removexattr rename renameat renameat2 restart_syscall riscv_hwprobe
rmdir rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn
rt_sigsuspend rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_getaffinity
sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min sched_getscheduler
sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32
setfsuid setfsuid32 setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority
setregid setregid32 setresgid setresgid32 setresuid setresuid32 setreuid setreuid32
setrlimit set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32
setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigprocmask
sigreturn socketcall socketpair splice stat stat64 statfs statfs64 statx symlink symlinkat
sync sync_file_range syncfs sysinfo tee tgkill time timer_create timer_delete
timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64 timerfd_create
timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times tkill truncate
truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat utimensat_time64 utimes
vfork vmsplice wait4 waitid waitpid write writev`

// defaultLikeProfile builds a profile shaped like containerd's default.
func defaultLikeProfile() *specs.LinuxSeccomp {
	eq := func(v uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: 0, Value: v, Op: specs.OpEqualTo}}
	}
	allow := func(name string, args []specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{name}, Action: specs.ActAllow, Args: args}
	}
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: strings.Fields(defaultLikeAllowed), Action: specs.ActAllow},
			allow("socket", []specs.LinuxSeccompArg{{Index: 0, Value: unix.AF_VSOCK, Op: specs.OpNotEqual}}),
			allow("personality", eq(0x0)),
			allow("personality", eq(0x8)),
			allow("personality", eq(0x20000)),
			allow("personality", eq(0x20008)),
			allow("personality", eq(0xffffffff)),
			allow("arch_prctl", nil),
			allow("modify_ldt", nil),
			// Namespace-creating clone flags are refused.
			allow("clone", []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}),
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.ENOSYS))},
			// A few capability-gated entries, as the generator adds them.
			{Names: []string{"bpf", "perf_event_open", "ptrace", "mount", "umount2", "unshare", "setns"}, Action: specs.ActAllow},
		},
	}
	if runtime.GOARCH == "arm64" {
		p.Architectures = []specs.Arch{specs.ArchAARCH64, specs.ArchARM}
	}
	return p
}

// TestDefaultLikeProfile compiles a containerd-shaped profile and checks
// every syscall number the architecture has, plus the argument rules,
// against the reference model. The program is far longer than a
// conditional jump can reach, so it also exercises the jump islands.
func TestDefaultLikeProfile(t *testing.T) {
	p := defaultLikeProfile()
	start := time.Now()
	f := mustCompile(t, p)
	elapsed := time.Since(start)

	islands := 0
	for _, ins := range f.prog {
		if ins.Code == opJA {
			islands++
		}
	}
	if f.Len() <= maxJump {
		t.Fatalf("program has only %d instructions; the test needs one longer than a conditional jump can span", f.Len())
	}
	for _, w := range f.Warnings {
		if _, ok := syscallNumbers[w]; ok {
			t.Errorf("warning for known syscall %q", w)
		}
	}
	for _, name := range []string{"chown32", "socketcall", "_llseek"} {
		if !strings.Contains(strings.Join(f.Warnings, " "), name) {
			t.Errorf("no warning for %q, which %s lacks", name, runtime.GOARCH)
		}
	}

	maxSteps := 0
	probe := func(d seccompData) uint32 {
		t.Helper()
		got, steps, err := execute(f.prog, d)
		if err != nil {
			t.Fatal(err)
		}
		maxSteps = max(maxSteps, steps)
		if want := reference(p, d); got != want {
			t.Errorf("nr=%d arch=%#x args=%#x: got %#x, want %#x", d.nr, d.arch, d.args[:2], got, want)
		}
		return got
	}
	// Every number up to past the end of the table, allowed or not.
	for nr := uint32(0); nr < 1024; nr++ {
		probe(native(nr))
	}
	perm := errnoRet(unix.EPERM)
	for _, c := range []struct {
		name string
		arg0 uint64
		want uint32
	}{
		{"personality", 0, unix.SECCOMP_RET_ALLOW},
		{"personality", 0x20008, unix.SECCOMP_RET_ALLOW},
		{"personality", 0xffffffff, unix.SECCOMP_RET_ALLOW},
		{"personality", 0x1_ffffffff, perm},
		{"personality", 0x40000, perm},
		{"clone", unix.CLONE_VM | unix.CLONE_FS | unix.CLONE_FILES | unix.CLONE_SIGHAND | unix.CLONE_THREAD, unix.SECCOMP_RET_ALLOW},
		{"clone", unix.CLONE_NEWNS, perm},
		{"clone", unix.CLONE_NEWUSER | unix.CLONE_VM, perm},
		{"clone3", 0, errnoRet(unix.ENOSYS)},
		{"socket", unix.AF_INET, unix.SECCOMP_RET_ALLOW},
		{"socket", unix.AF_VSOCK, perm},
		{"getpid", 0, unix.SECCOMP_RET_ALLOW},
		{"kexec_load", 0, perm},
	} {
		if got := probe(native(sysnr(t, c.name), c.arg0)); got != c.want {
			t.Errorf("%s(%#x) = %#x, want %#x", c.name, c.arg0, got, c.want)
		}
	}
	_, foreignAudit := foreignArch()
	if got := probe(seccompData{nr: 1, arch: foreignAudit}); got != perm {
		t.Errorf("foreign ABI got %#x, want the default %#x", got, perm)
	}
	t.Logf("default-like profile: %d instructions (%d JA islands), %d warnings, compiled in %v, longest path %d instructions",
		f.Len(), islands, len(f.Warnings), elapsed, maxSteps)
}

// TestLargeRuleBlocks puts many argument rules on several syscalls so the
// dispatch tree must reach rule blocks thousands of instructions away,
// which forces JA islands in compiler output (not just in the assembler
// test), and checks the result against the reference model.
func TestLargeRuleBlocks(t *testing.T) {
	names := []string{"read", "write", "openat", "close", "mmap", "ioctl", "kill", "getpid"}
	p := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	for i, name := range names {
		for v := range 40 {
			p.Syscalls = append(p.Syscalls, specs.LinuxSyscall{
				Names:    []string{name},
				Action:   specs.ActErrno,
				ErrnoRet: ptr(uint(1 + (i+v)%7)),
				Args: []specs.LinuxSeccompArg{
					{Index: 0, Value: uint64(v) << 31, Op: specs.OpEqualTo},
					{Index: 1, Value: uint64(v), Op: specs.OpGreaterEqual},
				},
			})
		}
	}
	f := mustCompile(t, p)
	islands := 0
	for _, ins := range f.prog {
		if ins.Code == opJA {
			islands++
		}
	}
	if islands == 0 {
		t.Fatalf("%d-instruction program has no JA islands", f.Len())
	}
	for _, name := range names {
		for v := range uint64(42) {
			for _, a1 := range []uint64{0, v - 1, v, 1 << 40} {
				d := native(sysnr(t, name), v<<31, a1)
				if got, want := run(t, f, d), reference(p, d); got != want {
					t.Errorf("%s(%#x, %#x) = %#x, want %#x", name, d.args[0], a1, got, want)
				}
			}
		}
	}
	t.Logf("%d instructions, %d JA islands", f.Len(), islands)
}

func BenchmarkCompileDefaultLike(b *testing.B) {
	p := defaultLikeProfile()
	for b.Loop() {
		if _, err := Compile(p); err != nil {
			b.Fatal(err)
		}
	}
}
