package seccomp

import (
	"encoding/binary"
	"fmt"
	"testing"

	"golang.org/x/sys/unix"
)

// This file holds a classic-BPF interpreter for the subset the compiler
// emits, plus the static checks the kernel's sk_chk_filter/seccomp_check_filter
// apply, so compiler output can be executed over synthetic seccomp_data.

// seccompData mirrors struct seccomp_data.
type seccompData struct {
	nr   uint32
	arch uint32
	ip   uint64
	args [6]uint64
}

func (d seccompData) bytes() []byte {
	b := make([]byte, 64)
	binary.LittleEndian.PutUint32(b[0:], d.nr)
	binary.LittleEndian.PutUint32(b[4:], d.arch)
	binary.LittleEndian.PutUint64(b[8:], d.ip)
	for i, a := range d.args {
		binary.LittleEndian.PutUint64(b[16+8*i:], a)
	}
	return b
}

// native returns seccomp_data for a native syscall.
func native(nr uint32, args ...uint64) seccompData {
	d := seccompData{nr: nr, arch: nativeAuditArch}
	copy(d.args[:], args)
	return d
}

// verifyProgram applies the kernel's load-time checks that matter here:
// size limits, known opcodes, in-bounds forward jumps, aligned loads inside
// seccomp_data, and a RET at the end.
func verifyProgram(prog []unix.SockFilter) error {
	if len(prog) == 0 || len(prog) > unix.BPF_MAXINSNS {
		return fmt.Errorf("program length %d out of range", len(prog))
	}
	for pc, ins := range prog {
		switch ins.Code {
		case opLoadAbs:
			if ins.K%4 != 0 || ins.K >= 64 {
				return fmt.Errorf("pc %d: bad load offset %d", pc, ins.K)
			}
		case opAndK, opRetK:
		case opJA:
			if uint64(pc)+1+uint64(ins.K) >= uint64(len(prog)) {
				return fmt.Errorf("pc %d: JA out of range", pc)
			}
		case opJEQ, opJGT, opJGE, opJSET:
			if pc+1+int(ins.Jt) >= len(prog) || pc+1+int(ins.Jf) >= len(prog) {
				return fmt.Errorf("pc %d: conditional jump out of range", pc)
			}
		default:
			return fmt.Errorf("pc %d: unexpected opcode %#x", pc, ins.Code)
		}
	}
	if prog[len(prog)-1].Code != opRetK {
		return fmt.Errorf("last instruction is not RET")
	}
	return nil
}

// execute runs prog over d and returns the filter's return value and the
// number of instructions executed.
func execute(prog []unix.SockFilter, d seccompData) (ret uint32, steps int, err error) {
	data := d.bytes()
	var acc uint32
	pc := 0
	for steps = 1; ; steps++ {
		if pc < 0 || pc >= len(prog) {
			return 0, steps, fmt.Errorf("pc %d out of program", pc)
		}
		ins := prog[pc] //nolint:gosec // pc is checked against len(prog) above
		pc++
		switch ins.Code {
		case opLoadAbs:
			acc = binary.LittleEndian.Uint32(data[ins.K:])
		case opAndK:
			acc &= ins.K
		case opRetK:
			return ins.K, steps, nil
		case opJA:
			pc += int(ins.K)
		case opJEQ, opJGT, opJGE, opJSET:
			var cond bool
			switch ins.Code {
			case opJEQ:
				cond = acc == ins.K
			case opJGT:
				cond = acc > ins.K
			case opJGE:
				cond = acc >= ins.K
			case opJSET:
				cond = acc&ins.K != 0
			}
			if cond {
				pc += int(ins.Jt)
			} else {
				pc += int(ins.Jf)
			}
		default:
			return 0, steps, fmt.Errorf("pc %d: unsupported opcode %#x", pc-1, ins.Code)
		}
	}
}

// run verifies and executes f's program, failing the test on any error.
func run(t testing.TB, f *Filter, d seccompData) uint32 {
	t.Helper()
	if err := verifyProgram(f.prog); err != nil {
		t.Fatalf("invalid program: %v", err)
	}
	ret, _, err := execute(f.prog, d)
	if err != nil {
		t.Fatalf("executing program: %v", err)
	}
	return ret
}

// TestInterpreterBasics guards the interpreter itself with a hand-written
// program, so compiler tests do not merely agree with a broken oracle.
func TestInterpreterBasics(t *testing.T) {
	prog := []unix.SockFilter{
		{Code: opLoadAbs, K: 16 + 4},           // hi(args[0])
		{Code: opAndK, K: 0xff00},              //
		{Code: opJEQ, K: 0x1200, Jt: 0, Jf: 2}, // → 3 : 5
		{Code: opJA, K: 2},                     // → 6
		{Code: opRetK, K: 1},                   //
		{Code: opRetK, K: 2},                   // 5
		{Code: opLoadAbs, K: 0},                // 6: nr
		{Code: opJGT, K: 10, Jt: 0, Jf: 1},     //
		{Code: opRetK, K: 3},                   // nr > 10
		{Code: opJSET, K: 4, Jt: 0, Jf: 1},     // 9
		{Code: opRetK, K: 4},                   //
		{Code: opJGE, K: 2, Jt: 0, Jf: 1},      // 11
		{Code: opRetK, K: 5},                   //
		{Code: opRetK, K: 6},                   //
	}
	if err := verifyProgram(prog); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		d    seccompData
		want uint32
	}{
		{native(0, 0x12340000_00000000), 2}, // hi&0xff00 == 0
		{native(11, 0x00001234_00000000), 3},
		{native(4, 0x00001234_00000000), 4},
		{native(2, 0x00001234_00000000), 5},
		{native(1, 0x00001234_00000000), 6},
	}
	for _, c := range cases {
		got, _, err := execute(prog, c.d)
		if err != nil || got != c.want {
			t.Errorf("execute(%+v) = %d, %v; want %d", c.d, got, err, c.want)
		}
	}
	bad := []unix.SockFilter{{Code: opJEQ, Jt: 5}, {Code: opRetK}}
	if verifyProgram(bad) == nil {
		t.Error("verifyProgram accepted an out-of-range jump")
	}
}
