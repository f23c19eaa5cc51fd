package seccomp

import (
	"fmt"
	"math/rand"
	"runtime"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func ptr(v uint) *uint { return &v }

func errnoRet(e unix.Errno) uint32 { return unix.SECCOMP_RET_ERRNO | uint32(e) }

func sysnr(t testing.TB, name string) uint32 {
	t.Helper()
	n, ok := syscallNumbers[name]
	if !ok {
		t.Fatalf("no syscall %q on %s", name, runtime.GOARCH)
	}
	return n
}

func mustCompile(t testing.TB, p *specs.LinuxSeccomp) *Filter {
	t.Helper()
	f, err := Compile(p)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if err := verifyProgram(f.prog); err != nil {
		t.Fatalf("Compile produced an invalid program: %v", err)
	}
	return f
}

// foreignArch is a non-native ABI the native kernel can actually present.
func foreignArch() (specs.Arch, uint32) {
	if runtime.GOARCH == "arm64" {
		return specs.ArchARM, unix.AUDIT_ARCH_ARM
	}
	return specs.ArchX86, unix.AUDIT_ARCH_I386
}

func TestActions(t *testing.T) {
	cases := []struct {
		act      specs.LinuxSeccompAction
		errnoRet *uint
		want     uint32
	}{
		{specs.ActKill, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillThread, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillProcess, nil, unix.SECCOMP_RET_KILL_PROCESS},
		{specs.ActTrap, nil, unix.SECCOMP_RET_TRAP},
		{specs.ActErrno, nil, errnoRet(unix.EPERM)},
		{specs.ActErrno, ptr(uint(unix.ENOSYS)), errnoRet(unix.ENOSYS)},
		{specs.ActErrno, ptr(0xffff), unix.SECCOMP_RET_ERRNO | 0xffff},
		{specs.ActTrace, nil, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{specs.ActTrace, ptr(42), unix.SECCOMP_RET_TRACE | 42},
		{specs.ActAllow, nil, unix.SECCOMP_RET_ALLOW},
		{specs.ActLog, nil, unix.SECCOMP_RET_LOG},
	}
	getpid, getppid := sysnr(t, "getpid"), sysnr(t, "getppid")
	for _, c := range cases {
		name := string(c.act)
		if c.errnoRet != nil {
			name += fmt.Sprintf("/%d", *c.errnoRet)
		}
		t.Run(name, func(t *testing.T) {
			// As a rule action, under a different default.
			def := specs.ActAllow
			if c.act == specs.ActAllow {
				def = specs.ActKillProcess
			}
			f := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: def,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: c.act, ErrnoRet: c.errnoRet}},
			})
			if got := run(t, f, native(getpid)); got != c.want {
				t.Errorf("rule: getpid returned %#x, want %#x", got, c.want)
			}
			if got, want := run(t, f, native(getppid)), mustRet(def, nil); got != want {
				t.Errorf("rule: getppid returned %#x, want default %#x", got, want)
			}

			// As the default action, with defaultErrnoRet.
			f = mustCompile(t, &specs.LinuxSeccomp{DefaultAction: c.act, DefaultErrnoRet: c.errnoRet})
			if got := run(t, f, native(getpid)); got != c.want {
				t.Errorf("default: getpid returned %#x, want %#x", got, c.want)
			}
		})
	}
}

// boundary is a set of 64-bit values around the edges the 32-bit split
// could get wrong.
var boundary = []uint64{
	0, 1, 2, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff,
	1 << 32, 1<<32 + 1, 0x1_ffffffff, 0x2_00000000, 0x2_00000001,
	0x7fffffff_ffffffff, 0x80000000_00000000, 0xffffffff_00000000,
	0xffffffff_fffffffe, 0xffffffff_ffffffff,
}

// TestArgOperators checks every comparison operator on every argument slot
// against 64-bit boundary values.
func TestArgOperators(t *testing.T) {
	ops := []specs.LinuxSeccompOperator{
		specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan,
	}
	read := sysnr(t, "read")
	const hit = unix.SECCOMP_RET_ERRNO | 77
	for _, op := range ops {
		for vi, v := range boundary {
			idx := uint(vi % maxSyscallArgs)
			cond := specs.LinuxSeccompArg{Index: idx, Value: v, Op: op}
			f := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: ptr(77), Args: []specs.LinuxSeccompArg{cond}}},
			})
			for _, x := range boundary {
				d := native(read)
				d.args[idx] = x
				d.args[(idx+1)%maxSyscallArgs] = ^x // other slots must not matter
				want := uint32(unix.SECCOMP_RET_ALLOW)
				if refCompare(cond, x) {
					want = hit
				}
				if got := run(t, f, d); got != want {
					t.Errorf("args[%d]=%#x %s %#x: got %#x, want %#x", idx, x, op, v, got, want)
				}
			}
		}
	}
}

func TestArgMaskedEqual(t *testing.T) {
	masks := []uint64{0, 0xff, 0xffffffff, 0xffffffff_00000000, 1 << 63, 0x00ff00ff_00ff00ff, ^uint64(0)}
	read := sysnr(t, "read")
	for _, mask := range masks {
		for _, want := range boundary {
			cond := specs.LinuxSeccompArg{Index: 3, Value: mask, ValueTwo: want, Op: specs.OpMaskedEqual}
			f := mustCompile(t, &specs.LinuxSeccomp{
				DefaultAction: specs.ActAllow,
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{cond}}},
			})
			for _, x := range append(slices.Clone(boundary), want, want|^mask, mask) {
				d := native(read)
				d.args[3] = x
				exp := uint32(unix.SECCOMP_RET_ALLOW)
				if x&mask == want {
					exp = unix.SECCOMP_RET_KILL_PROCESS
				}
				if got := run(t, f, d); got != exp {
					t.Errorf("(%#x & %#x) == %#x: got %#x, want %#x", x, mask, want, got, exp)
				}
			}
		}
	}
}

// TestRuleCombination covers how several conditions and several rules for
// one syscall combine.
func TestRuleCombination(t *testing.T) {
	read := sysnr(t, "read")
	eq := func(i uint, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: specs.OpEqualTo}
	}
	errno := func(e uint, args ...specs.LinuxSeccompArg) specs.LinuxSyscall {
		return specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: ptr(e), Args: args}
	}
	cases := []struct {
		name  string
		def   specs.LinuxSeccompAction
		calls []specs.LinuxSyscall
		args  [][2]uint64 // (args[0], args[1]) probes
		want  []uint32
	}{
		{
			name:  "conditions in one rule are ANDed",
			def:   specs.ActAllow,
			calls: []specs.LinuxSyscall{errno(10, eq(0, 1), eq(1, 2))},
			args:  [][2]uint64{{1, 2}, {1, 3}, {0, 2}},
			want:  []uint32{errnoRet(10), unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_ALLOW},
		},
		{
			name:  "rules are ORed, first match wins",
			def:   specs.ActAllow,
			calls: []specs.LinuxSyscall{errno(10, eq(0, 1)), errno(11, eq(1, 2)), errno(12, eq(0, 1))},
			args:  [][2]uint64{{1, 2}, {5, 2}, {5, 5}},
			want:  []uint32{errnoRet(10), errnoRet(11), unix.SECCOMP_RET_ALLOW},
		},
		{
			name:  "repeated index splits the entry into ORed rules (runc)",
			def:   specs.ActAllow,
			calls: []specs.LinuxSyscall{errno(10, eq(0, 1), eq(0, 2))},
			args:  [][2]uint64{{1, 0}, {2, 0}, {3, 0}},
			want:  []uint32{errnoRet(10), errnoRet(10), unix.SECCOMP_RET_ALLOW},
		},
		{
			name:  "unconditional rule overrides earlier conditional ones",
			def:   specs.ActAllow,
			calls: []specs.LinuxSyscall{errno(10, eq(0, 1)), errno(11), errno(12, eq(0, 2))},
			args:  [][2]uint64{{1, 0}, {2, 0}, {3, 0}},
			want:  []uint32{errnoRet(11), errnoRet(11), errnoRet(11)},
		},
		{
			name:  "first unconditional rule wins",
			def:   specs.ActAllow,
			calls: []specs.LinuxSyscall{errno(11), errno(12)},
			args:  [][2]uint64{{0, 0}},
			want:  []uint32{errnoRet(11)},
		},
		{
			name: "rule equal to the default is dropped, so it cannot shadow",
			def:  specs.ActErrno, // EPERM
			calls: []specs.LinuxSyscall{
				{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: ptr(uint(unix.EPERM))},
				{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(0, 3)}},
			},
			args: [][2]uint64{{3, 0}, {4, 0}},
			want: []uint32{unix.SECCOMP_RET_ALLOW, errnoRet(unix.EPERM)},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := &specs.LinuxSeccomp{DefaultAction: c.def, Syscalls: c.calls}
			f := mustCompile(t, p)
			for i, a := range c.args {
				d := native(read, a[0], a[1])
				got := run(t, f, d)
				if got != c.want[i] {
					t.Errorf("read(%#x, %#x) = %#x, want %#x", a[0], a[1], got, c.want[i])
				}
				if ref := reference(p, d); ref != c.want[i] {
					t.Errorf("reference model disagrees with the test table: %#x", ref)
				}
			}
		})
	}
}

func TestArchitectures(t *testing.T) {
	getpid := sysnr(t, "getpid")
	foreignName, foreignAudit := foreignArch()
	nativeName := specs.ArchX86_64
	if runtime.GOARCH == "arm64" {
		nativeName = specs.ArchAARCH64
	}
	allow := []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow}}
	deny := []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno}}
	kill := uint32(unix.SECCOMP_RET_KILL_PROCESS)
	const bogusArch = unix.AUDIT_ARCH_S390X // never on this kernel, never listed

	t.Run("allow-list, foreign listed", func(t *testing.T) {
		f := mustCompile(t, &specs.LinuxSeccomp{
			DefaultAction: specs.ActErrno, Syscalls: allow,
			Architectures: []specs.Arch{nativeName, foreignName, specs.ArchX32},
		})
		check(t, f, native(getpid), unix.SECCOMP_RET_ALLOW)
		check(t, f, seccompData{nr: getpid, arch: foreignAudit}, errnoRet(unix.EPERM))
		check(t, f, seccompData{nr: getpid, arch: bogusArch}, kill)
		if x32SyscallBit != 0 {
			check(t, f, native(getpid|x32SyscallBit), errnoRet(unix.EPERM))
		}
	})
	t.Run("no architectures listed", func(t *testing.T) {
		f := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow})
		check(t, f, native(getpid), unix.SECCOMP_RET_ALLOW)
		check(t, f, seccompData{nr: getpid, arch: foreignAudit}, kill)
		if x32SyscallBit != 0 {
			check(t, f, native(getpid|x32SyscallBit), kill)
		}
	})
	t.Run("deny-list gets ENOSYS on foreign ABIs", func(t *testing.T) {
		f := mustCompile(t, &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow, Syscalls: deny,
			Architectures: []specs.Arch{foreignName, specs.ArchX32},
		})
		check(t, f, native(getpid), errnoRet(unix.EPERM))
		check(t, f, native(getpid+1), unix.SECCOMP_RET_ALLOW)
		check(t, f, seccompData{nr: getpid + 1, arch: foreignAudit}, errnoRet(unix.ENOSYS))
		if x32SyscallBit != 0 {
			check(t, f, native((getpid+1)|x32SyscallBit), errnoRet(unix.ENOSYS))
		}
	})
	t.Run("permissive-only profile keeps its default on foreign ABIs", func(t *testing.T) {
		f := mustCompile(t, &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActLog}},
			Architectures: []specs.Arch{foreignName},
		})
		check(t, f, seccompData{nr: getpid, arch: foreignAudit}, unix.SECCOMP_RET_ALLOW)
	})
}

func check(t *testing.T, f *Filter, d seccompData, want uint32) {
	t.Helper()
	if got := run(t, f, d); got != want {
		t.Errorf("nr=%#x arch=%#x: got %#x, want %#x", d.nr, d.arch, got, want)
	}
}

func TestUnknownSyscallsAreWarnings(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid", "no_such_syscall", "another_fake"}, Action: specs.ActAllow},
			{Names: []string{"no_such_syscall"}, Action: specs.ActLog},
			// Same as the default: dropped before name lookup, no warning.
			{Names: []string{"dropped_fake"}, Action: specs.ActErrno},
		},
	})
	if want := []string{"no_such_syscall", "another_fake"}; !slices.Equal(f.Warnings, want) {
		t.Errorf("Warnings = %q, want %q", f.Warnings, want)
	}
	check(t, f, native(sysnr(t, "getpid")), unix.SECCOMP_RET_ALLOW)
}

func TestCompileErrors(t *testing.T) {
	ok := specs.LinuxSeccomp{DefaultAction: specs.ActAllow}
	with := func(mod func(*specs.LinuxSeccomp)) *specs.LinuxSeccomp {
		p := ok
		mod(&p)
		return &p
	}
	rule := func(r specs.LinuxSyscall) func(*specs.LinuxSeccomp) {
		return func(p *specs.LinuxSeccomp) { p.Syscalls = []specs.LinuxSyscall{r} }
	}
	cases := []struct {
		name    string
		p       *specs.LinuxSeccomp
		wantErr string
	}{
		{"nil", nil, "nil profile"},
		{"notify default", with(func(p *specs.LinuxSeccomp) { p.DefaultAction = specs.ActNotify; p.ListenerPath = "/run/agent.sock" }), "SCMP_ACT_NOTIFY cannot be used as default action"},
		{"notify without listener", with(rule(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActNotify})), "listenerPath is not set"},
		{"notify on write", with(func(p *specs.LinuxSeccomp) {
			p.ListenerPath = "/run/agent.sock"
			p.Syscalls = []specs.LinuxSyscall{{Names: []string{"mkdir", "write"}, Action: specs.ActNotify}}
		}), "SCMP_ACT_NOTIFY cannot be used for the write syscall"},
		{"bad action", with(rule(specs.LinuxSyscall{Names: []string{"read"}, Action: "SCMP_ACT_MAYBE"})), "unknown action"},
		{"errno too big", with(rule(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: ptr(1 << 16)})), "does not fit"},
		{"arg index", with(rule(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}})), "index 6 out of range"},
		{"bad op", with(rule(specs.LinuxSyscall{Names: []string{"read"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Op: "SCMP_CMP_ODD"}}})), "unknown operator"},
		{"empty name", with(rule(specs.LinuxSyscall{Names: []string{""}, Action: specs.ActErrno})), "empty syscall name"},
		{"unknown flag", with(func(p *specs.LinuxSeccomp) { p.Flags = []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"} }), `unknown flag "SECCOMP_FILTER_FLAG_BOGUS"`},
		{"notify flag", with(func(p *specs.LinuxSeccomp) {
			p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}
		}), "needs SCMP_ACT_NOTIFY rules"},
		{"unknown arch", with(func(p *specs.LinuxSeccomp) { p.Architectures = []specs.Arch{"SCMP_ARCH_VAX"} }), "unknown architecture"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Compile(c.p)
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("Compile error = %v, want one containing %q", err, c.wantErr)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	f := mustCompile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Flags: []specs.LinuxSeccompFlag{
			"SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow,
		},
	})
	want := uint(unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW)
	if f.flags != want {
		t.Errorf("flags = %#x, want %#x", f.flags, want)
	}
}

// TestNotify: SCMP_ACT_NOTIFY rules return SECCOMP_RET_USER_NOTIF and imply
// SECCOMP_FILTER_FLAG_NEW_LISTENER (with TSYNC_ESRCH when TSYNC is asked
// for, which the kernel requires); WAIT_KILLABLE_RECV goes with them; a
// listenerPath without notify rules changes nothing, as with runc.
func TestNotify(t *testing.T) {
	p := &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		ListenerPath:  "/run/agent.sock",
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify},
			{Names: []string{"getpid"}, Action: specs.ActNotify, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 1, Op: specs.OpEqualTo}}},
		},
	}
	f := mustCompile(t, p)
	if !f.Notifies() || f.flags != unix.SECCOMP_FILTER_FLAG_NEW_LISTENER {
		t.Errorf("notifies %v, flags %#x; want a listener (%#x)", f.Notifies(), f.flags, unix.SECCOMP_FILTER_FLAG_NEW_LISTENER)
	}
	check(t, f, native(sysnr(t, "mkdirat")), unix.SECCOMP_RET_USER_NOTIF)
	check(t, f, native(sysnr(t, "getpid"), 1), unix.SECCOMP_RET_USER_NOTIF)
	check(t, f, native(sysnr(t, "getpid"), 2), unix.SECCOMP_RET_ALLOW)
	check(t, f, native(sysnr(t, "write")), unix.SECCOMP_RET_ALLOW)

	p.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC"}
	f = mustCompile(t, p)
	want := uint(unix.SECCOMP_FILTER_FLAG_NEW_LISTENER | unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_TSYNC | unix.SECCOMP_FILTER_FLAG_TSYNC_ESRCH)
	if f.flags != want {
		t.Errorf("flags %#x, want %#x", f.flags, want)
	}

	plain := mustCompile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, ListenerPath: "/run/agent.sock",
		Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir"}, Action: specs.ActErrno}}})
	if plain.Notifies() || plain.flags != 0 {
		t.Errorf("a profile without notify rules: notifies %v, flags %#x", plain.Notifies(), plain.flags)
	}
}

// TestLongJumps drives the assembler across the 255-instruction reach of
// conditional jumps, for each branch separately and both at once, including
// the off-by-one where an island for one branch pushes the other out of
// reach.
func TestLongJumps(t *testing.T) {
	for _, gapNear := range []int{0, 1, 200, 253, 254, 255, 256, 257, 600} {
		for _, gapFar := range []int{0, 1, 2, 300, 5000} {
			for _, swap := range []bool{false, true} {
				a := newAssembler()
				far := a.ret(1)
				for i := 0; i < gapFar; i++ {
					a.emit(unix.SockFilter{Code: opRetK, K: 0xdead})
				}
				near := a.ret(2)
				for i := 0; i < gapNear; i++ {
					a.emit(unix.SockFilter{Code: opRetK, K: 0xdead})
				}
				jt, jf, wantT, wantF := far, near, uint32(1), uint32(2)
				if swap {
					jt, jf, wantT, wantF = near, far, 2, 1
				}
				entry := a.jump(opJEQ, 7, jt, jf)
				entry = a.stmt(opLoadAbs, offNr, entry)
				prog, err := a.program(entry)
				if gapFar+gapNear > unix.BPF_MAXINSNS {
					if err == nil {
						t.Errorf("gaps %d/%d: oversized program accepted", gapNear, gapFar)
					}
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				if err := verifyProgram(prog); err != nil {
					t.Fatalf("gaps %d/%d swap=%v: %v", gapNear, gapFar, swap, err)
				}
				for nr, want := range map[uint32]uint32{7: wantT, 8: wantF} {
					got, _, err := execute(prog, native(nr))
					if err != nil || got != want {
						t.Errorf("gaps %d/%d swap=%v nr=%d: got %d, %v; want %d", gapNear, gapFar, swap, nr, got, err, want)
					}
				}
			}
		}
	}
}

// TestRandomProfiles compares the compiled program with the reference model
// on random profiles and random syscalls, arguments and architectures.
func TestRandomProfiles(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	names := []string{"read", "write", "openat", "close", "getpid", "mmap", "ioctl", "clone", "socket", "kill", "no_such_call"}
	actions := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActKillProcess, specs.ActTrap, specs.ActLog, specs.ActKill}
	ops := []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	foreignName, foreignAudit := foreignArch()
	value := func() uint64 {
		if rng.Intn(4) == 0 {
			return rng.Uint64()
		}
		return boundary[rng.Intn(len(boundary))]
	}
	action := func() (specs.LinuxSeccompAction, *uint) {
		a := actions[rng.Intn(len(actions))]
		if a == specs.ActErrno && rng.Intn(2) == 0 {
			return a, ptr(uint(1 + rng.Intn(3)))
		}
		return a, nil
	}

	for iter := 0; iter < 400; iter++ {
		p := &specs.LinuxSeccomp{}
		p.DefaultAction, p.DefaultErrnoRet = action()
		if rng.Intn(2) == 0 {
			p.Architectures = []specs.Arch{foreignName}
		}
		if rng.Intn(2) == 0 {
			p.Architectures = append(p.Architectures, specs.ArchX32)
		}
		for range rng.Intn(12) {
			var call specs.LinuxSyscall
			for range 1 + rng.Intn(3) {
				call.Names = append(call.Names, names[rng.Intn(len(names))])
			}
			call.Action, call.ErrnoRet = action()
			for range rng.Intn(4) {
				call.Args = append(call.Args, specs.LinuxSeccompArg{
					Index: uint(rng.Intn(3)), Value: value(), ValueTwo: value(), Op: ops[rng.Intn(len(ops))],
				})
			}
			p.Syscalls = append(p.Syscalls, call)
		}
		f := mustCompile(t, p)

		for range 200 {
			var d seccompData
			switch r := rng.Intn(10); {
			case r == 0:
				d = seccompData{nr: uint32(rng.Intn(500)), arch: foreignAudit}
			case r == 1 && x32SyscallBit != 0:
				d = native(uint32(rng.Intn(500)) | x32SyscallBit)
			case r < 4:
				d = native(uint32(rng.Intn(500)))
			default:
				d = native(syscallNumbers[names[rng.Intn(len(names)-1)]])
			}
			for i := range 3 {
				d.args[i] = value()
				if rng.Intn(3) == 0 && len(p.Syscalls) > 0 {
					// Aim at a value the profile mentions.
					c := p.Syscalls[rng.Intn(len(p.Syscalls))]
					if len(c.Args) > 0 {
						a := c.Args[rng.Intn(len(c.Args))]
						d.args[a.Index] = a.Value + uint64(rng.Intn(3)) - 1
						if a.Op == specs.OpMaskedEqual {
							d.args[a.Index] = a.ValueTwo | (value() &^ a.Value)
						}
					}
				}
			}
			if got, want := run(t, f, d), reference(p, d); got != want {
				t.Fatalf("profile %+v\ndata %+v: got %#x, want %#x", p, d, got, want)
			}
		}
	}
}
