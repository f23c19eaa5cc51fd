package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// This file is a tiny classic-BPF assembler. It builds the program back to
// front: every instruction is appended after the instructions that follow it
// in the final program, so a jump only ever targets code that already exists
// and its offset is known the moment it is emitted. That makes long jumps
// easy: a conditional jump can only skip 255 instructions (jt and jf are
// uint8), so when a target is further away the assembler first emits an
// unconditional JA (32-bit offset) to it and points the short jump at that
// "island" instead. No second pass or relaxation loop is needed.

// Opcodes used by the compiler (linux/bpf_common.h).
const (
	opLoadAbs = unix.BPF_LD | unix.BPF_W | unix.BPF_ABS // A = *(u32 *)(data + k)
	opAndK    = unix.BPF_ALU | unix.BPF_AND | unix.BPF_K
	opJA      = unix.BPF_JMP | unix.BPF_JA
	opJEQ     = unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K
	opJGT     = unix.BPF_JMP | unix.BPF_JGT | unix.BPF_K
	opJGE     = unix.BPF_JMP | unix.BPF_JGE | unix.BPF_K
	opJSET    = unix.BPF_JMP | unix.BPF_JSET | unix.BPF_K
	opRetK    = unix.BPF_RET | unix.BPF_K

	maxJump = 255 // largest jt/jf offset
)

// label names an emitted instruction by its index counted from the END of
// the program. Because code is only ever added in front, labels are stable.
type label int

type assembler struct {
	rev  []unix.SockFilter // instructions, last one first
	rets map[uint32]label  // shared RET instructions, by return value
}

func newAssembler() *assembler {
	return &assembler{rets: make(map[uint32]label)}
}

// head is the label of the instruction emitted last, i.e. the current first
// instruction of the program; a non-jump instruction emitted now falls
// through to it.
func (a *assembler) head() label { return label(len(a.rev) - 1) }

func (a *assembler) emit(ins unix.SockFilter) label {
	a.rev = append(a.rev, ins)
	return a.head()
}

// offsetTo is the jump offset from an instruction emitted next to target.
func (a *assembler) offsetTo(target label) int {
	return len(a.rev) - 1 - int(target)
}

// ret returns a RET instruction with value k. RETs are shared while they
// are within reach of a conditional jump; once the nearest copy is too far
// away, a fresh one costs the same single instruction as a JA island and
// serves the following jumps too.
func (a *assembler) ret(k uint32) label {
	if l, ok := a.rets[k]; ok && a.offsetTo(l) < maxJump {
		return l
	}
	l := a.emit(unix.SockFilter{Code: opRetK, K: k})
	a.rets[k] = l
	return l
}

// ja emits an unconditional jump to target, which may be any distance away.
func (a *assembler) ja(target label) label {
	return a.emit(unix.SockFilter{Code: opJA, K: uint32(a.offsetTo(target))})
}

// stmt emits a non-jump instruction (load, ALU) that continues at next.
func (a *assembler) stmt(code uint16, k uint32, next label) label {
	if next != a.head() {
		a.ja(next)
	}
	return a.emit(unix.SockFilter{Code: code, K: k})
}

// jump emits "if A <op> k goto jt else goto jf", inserting JA islands for
// targets beyond the reach of an 8-bit offset.
func (a *assembler) jump(code uint16, k uint32, jt, jf label) label {
	if jt == jf {
		return jt // the test cannot change the outcome
	}
	// An island for jt pushes jf one further away, so jf is checked first
	// with one slot of slack.
	if a.offsetTo(jf) > maxJump-1 {
		jf = a.ja(jf)
	}
	if a.offsetTo(jt) > maxJump {
		jt = a.ja(jt)
	}
	return a.emit(unix.SockFilter{
		Code: code,
		Jt:   uint8(a.offsetTo(jt)),
		Jf:   uint8(a.offsetTo(jf)),
		K:    k,
	})
}

// program returns the instructions in execution order, starting at entry.
func (a *assembler) program(entry label) ([]unix.SockFilter, error) {
	if entry != a.head() {
		a.ja(entry)
	}
	if len(a.rev) > unix.BPF_MAXINSNS {
		return nil, fmt.Errorf("seccomp: filter needs %d BPF instructions, the kernel accepts at most %d", len(a.rev), unix.BPF_MAXINSNS)
	}
	prog := make([]unix.SockFilter, len(a.rev))
	for i, ins := range a.rev {
		prog[len(a.rev)-1-i] = ins
	}
	return prog, nil
}
