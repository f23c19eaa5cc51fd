package seccomp

import (
	"fmt"
	"slices"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The generated program has three parts, in execution order:
//
//	arch check     load seccomp_data.arch, route non-native ABIs (archPrologue)
//	dispatch       load seccomp_data.nr, binary search over the syscall numbers
//	               that have rules, linear JEQ chains at the leaves
//	rule blocks    one per syscall: its rules' argument checks, each ending in
//	               a RET; falling off the last rule returns the default action
//
// The assembler builds back to front, so the functions below are called in
// the reverse of that order.

// leafSize is the number of syscalls tested linearly at a leaf of the
// dispatch tree. Small leaves keep the worst-case path short; larger ones
// save a few internal nodes. libseccomp uses 4 as well.
const leafSize = 4

type compiler struct {
	a      *assembler
	defRet uint32
}

// syscallDispatch emits the rule blocks and the search tree that selects
// among them. On entry to the tree A must hold seccomp_data.nr.
//
// RET instructions are requested (c.a.ret) right where they are used rather
// than once up front, so the assembler can hand out a copy within jump
// reach instead of routing through JA islands.
func (c *compiler) syscallDispatch(table []*syscallRules) label {
	blocks := make([]label, len(table))
	for i, sr := range table {
		if sr.uncond == nil {
			blocks[i] = c.ruleBlock(sr)
		}
	}
	return c.searchTree(table, blocks)
}

// searchTree dispatches on A (the syscall number) over table, which is
// sorted. Syscalls with an unconditional rule jump straight to a RET.
func (c *compiler) searchTree(table []*syscallRules, blocks []label) label {
	if len(table) <= leafSize {
		next := c.a.ret(c.defRet)
		for i := len(table) - 1; i >= 0; i-- {
			target := blocks[i]
			if u := table[i].uncond; u != nil {
				target = c.a.ret(u.ret)
			}
			next = c.a.jump(opJEQ, table[i].nr, target, next)
		}
		return next
	}
	mid := len(table) / 2
	upper := c.searchTree(table[mid:], blocks[mid:])
	lower := c.searchTree(table[:mid], blocks[:mid])
	return c.a.jump(opJGE, table[mid].nr, upper, lower)
}

// ruleBlock emits the code for one syscall's conditional rules and returns
// its entry. The rules are tried in order; the first whose conditions all
// hold decides, and if none does the default action applies.
func (c *compiler) ruleBlock(sr *syscallRules) label {
	next := c.a.ret(c.defRet)
	for i := len(sr.conds) - 1; i >= 0; i-- {
		r := sr.conds[i]
		match := c.a.ret(r.ret)
		for j := len(r.args) - 1; j >= 0; j-- {
			match = c.argCheck(r.args[j], match, next)
		}
		next = match
	}
	return next
}

// argCheck emits a test of one 64-bit syscall argument that continues at
// match when the condition holds and at nomatch otherwise.
//
// Classic BPF only has 32-bit loads, so every comparison is done on the high
// word first and the low word only decides when the high words are equal:
// x > v  ⇔  hi(x) > hi(v) ∨ (hi(x) = hi(v) ∧ lo(x) > lo(v)).
// LT, LE and NE are the negations of GE, GT and EQ (match/nomatch swapped).
func (c *compiler) argCheck(arg specs.LinuxSeccompArg, match, nomatch label) label {
	a := c.a
	loOff, hiOff := argHalves(arg.Index)
	v := arg.Value
	vLo, vHi := uint32(v), uint32(v>>32)

	switch arg.Op {
	case specs.OpNotEqual:
		arg.Op = specs.OpEqualTo
		return c.argCheck(arg, nomatch, match)
	case specs.OpLessThan:
		arg.Op = specs.OpGreaterEqual
		return c.argCheck(arg, nomatch, match)
	case specs.OpLessEqual:
		arg.Op = specs.OpGreaterThan
		return c.argCheck(arg, nomatch, match)

	case specs.OpEqualTo:
		lo := a.jump(opJEQ, vLo, match, nomatch)
		lo = a.stmt(opLoadAbs, loOff, lo)
		hi := a.jump(opJEQ, vHi, lo, nomatch)
		return a.stmt(opLoadAbs, hiOff, hi)

	case specs.OpGreaterThan, specs.OpGreaterEqual:
		loOp := uint16(opJGT)
		if arg.Op == specs.OpGreaterEqual {
			loOp = opJGE
		}
		lo := a.jump(loOp, vLo, match, nomatch)
		lo = a.stmt(opLoadAbs, loOff, lo)
		hiEq := a.jump(opJEQ, vHi, lo, nomatch)
		hiGt := a.jump(opJGT, vHi, match, hiEq)
		return a.stmt(opLoadAbs, hiOff, hiGt)

	case specs.OpMaskedEqual:
		// libseccomp's SCMP_CMP_MASKED_EQ: (arg & value) == valueTwo.
		mask, want := v, arg.ValueTwo
		lo := a.jump(opJEQ, uint32(want), match, nomatch)
		lo = a.stmt(opAndK, uint32(mask), lo)
		lo = a.stmt(opLoadAbs, loOff, lo)
		hi := a.jump(opJEQ, uint32(want>>32), lo, nomatch)
		hi = a.stmt(opAndK, uint32(mask>>32), hi)
		return a.stmt(opLoadAbs, hiOff, hi)
	}
	panic(fmt.Sprintf("seccomp: operator %q passed validation", arg.Op)) // buildTable rejects unknown ops
}

// archPrologue emits the architecture check in front of native (the
// dispatch entry) and returns the program's entry point.
//
// A syscall number means nothing without seccomp_data.arch: on an x86_64
// kernel an int 0x80 call is an i386 syscall with its own numbering, and x32
// calls use the x86_64 audit arch with __X32_SYSCALL_BIT set in the number.
// We only carry the native syscall table, so:
//
//   - Native ABI: the full rule table.
//   - A non-native ABI listed in the profile's architectures (including
//     SCMP_ARCH_X32): a single blanket action, foreignRet. For the usual
//     allow-list profiles that is the default action, so such calls are
//     refused the same way unlisted syscalls are. Simple and never more
//     permissive than the profile.
//   - Any other ABI: KILL_PROCESS, like libseccomp's "bad arch" action.
//
// The one trap is a deny-list profile (permissive default, restrictive
// rules): giving foreign ABIs the default action would let 32-bit code skip
// every deny rule. Such profiles get ERRNO(ENOSYS) for foreign ABIs instead,
// as if the kernel were built without that compat layer.
func (c *compiler) archPrologue(archs []specs.Arch, foreignRet uint32, native label) (label, error) {
	var foreign []uint32
	x32Listed := false
	for _, name := range archs {
		if name == specs.ArchX32 {
			x32Listed = true
			continue
		}
		v, ok := auditArchs[name]
		if !ok {
			return 0, fmt.Errorf("seccomp: unknown architecture %q", name)
		}
		if v != nativeAuditArch && !slices.Contains(foreign, v) {
			foreign = append(foreign, v)
		}
	}
	kill := uint32(unix.SECCOMP_RET_KILL_PROCESS)

	if x32SyscallBit != 0 {
		x32 := kill
		if x32Listed {
			x32 = foreignRet
		}
		native = c.a.jump(opJSET, x32SyscallBit, c.a.ret(x32), native)
	}
	native = c.a.stmt(opLoadAbs, offNr, native)

	other := c.a.ret(kill)
	for i := len(foreign) - 1; i >= 0; i-- {
		other = c.a.jump(opJEQ, foreign[i], c.a.ret(foreignRet), other)
	}
	entry := c.a.jump(opJEQ, nativeAuditArch, native, other)
	return c.a.stmt(opLoadAbs, offArch, entry), nil
}

// foreignRet is the blanket action for listed non-native ABIs; see
// archPrologue. Every rule counts, including those for names unknown on
// the native architecture: a deny-list entry for an i386-only syscall such
// as socketcall is exactly what a foreign ABI must not get around.
func foreignRet(defRet uint32, calls []specs.LinuxSyscall) uint32 {
	if !permissive(defRet) {
		return defRet
	}
	for _, call := range calls {
		// Errors were already reported by buildTable.
		if ret, err := actionRet(call.Action, call.ErrnoRet); err == nil && !permissive(ret) {
			return unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
	}
	return defRet
}

// auditArchs maps the spec's architecture names to seccomp_data.arch values
// (libseccomp's SCMP_ARCH_* definitions). SCMP_ARCH_X32 has no value of its
// own and is handled in archPrologue.
var auditArchs = map[specs.Arch]uint32{
	specs.ArchX86:         unix.AUDIT_ARCH_I386,
	specs.ArchX86_64:      unix.AUDIT_ARCH_X86_64,
	specs.ArchARM:         unix.AUDIT_ARCH_ARM,
	specs.ArchAARCH64:     unix.AUDIT_ARCH_AARCH64,
	specs.ArchMIPS:        unix.AUDIT_ARCH_MIPS,
	specs.ArchMIPS64:      unix.AUDIT_ARCH_MIPS64,
	specs.ArchMIPS64N32:   unix.AUDIT_ARCH_MIPS64N32,
	specs.ArchMIPSEL:      unix.AUDIT_ARCH_MIPSEL,
	specs.ArchMIPSEL64:    unix.AUDIT_ARCH_MIPSEL64,
	specs.ArchMIPSEL64N32: unix.AUDIT_ARCH_MIPSEL64N32,
	specs.ArchPPC:         unix.AUDIT_ARCH_PPC,
	specs.ArchPPC64:       unix.AUDIT_ARCH_PPC64,
	specs.ArchPPC64LE:     unix.AUDIT_ARCH_PPC64LE,
	specs.ArchS390:        unix.AUDIT_ARCH_S390,
	specs.ArchS390X:       unix.AUDIT_ARCH_S390X,
	specs.ArchPARISC:      unix.AUDIT_ARCH_PARISC,
	specs.ArchPARISC64:    unix.AUDIT_ARCH_PARISC64,
	specs.ArchRISCV64:     unix.AUDIT_ARCH_RISCV64,
	specs.ArchLOONGARCH64: unix.AUDIT_ARCH_LOONGARCH64,
	specs.ArchM68K:        unix.AUDIT_ARCH_M68K,
	specs.ArchSH:          unix.AUDIT_ARCH_SHEL,
	specs.ArchSHEB:        unix.AUDIT_ARCH_SH,
}
