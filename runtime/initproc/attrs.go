package initproc

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// enterTimeNamespace creates the container's time namespace with its clock
// offsets. The init itself stays outside; the program it execs is inside
// (execve switches to the namespace for children).
func enterTimeNamespace(sys Syscalls, offsets map[string]specs.LinuxTimeOffset) error {
	if err := sys.Unshare(unix.CLONE_NEWTIME); err != nil {
		return fmt.Errorf("unshare time namespace: %w", err)
	}
	var b strings.Builder
	for clock, off := range offsets {
		if clock != "monotonic" && clock != "boottime" {
			return fmt.Errorf("invalid time offset clock %q: must be monotonic or boottime", clock)
		}
		fmt.Fprintf(&b, "%s %d %d\n", clock, off.Secs, off.Nanosecs)
	}
	if b.Len() == 0 {
		return nil
	}
	// Offsets can only be written before any process is in the namespace.
	if err := sys.WriteProcFile("/proc/self/timens_offsets", b.String()); err != nil { // procfs-literal: writeProcFile opens it in a procfs of its own
		return fmt.Errorf("set time offsets: %w", err)
	}
	return nil
}

var personalityDomains = map[specs.LinuxPersonalityDomain]int{
	specs.PerLinux:   0x0000,
	specs.PerLinux32: 0x0008,
}

func setPersonality(sys Syscalls, p *specs.LinuxPersonality) error {
	domain, ok := personalityDomains[p.Domain]
	if !ok {
		return fmt.Errorf("invalid personality domain %q", p.Domain)
	}
	if len(p.Flags) > 0 {
		return fmt.Errorf("personality flags %v are not supported", p.Flags)
	}
	if err := sys.Personality(uintptr(domain)); err != nil {
		return fmt.Errorf("set personality %s: %w", p.Domain, err)
	}
	return nil
}

var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther: 0, specs.SchedFIFO: 1, specs.SchedRR: 2, specs.SchedBatch: 3,
	specs.SchedISO: 4, specs.SchedIdle: 5, specs.SchedDeadline: 6,
}

var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork: 0x01, specs.SchedFlagReclaim: 0x02, specs.SchedFlagDLOverrun: 0x04,
	specs.SchedFlagKeepPolicy: 0x08, specs.SchedFlagKeepParams: 0x10, specs.SchedFlagUtilClampMin: 0x20,
	specs.SchedFlagUtilClampMax: 0x40,
}

func setScheduler(sys Syscalls, s *specs.Scheduler) error {
	policy, ok := schedPolicies[s.Policy]
	if !ok {
		return fmt.Errorf("invalid scheduler policy %q", s.Policy)
	}
	attr := unix.SchedAttr{
		Size: unix.SizeofSchedAttr, Policy: policy, Nice: s.Nice, Priority: uint32(s.Priority),
		Runtime: s.Runtime, Deadline: s.Deadline, Period: s.Period,
	}
	for _, f := range s.Flags {
		v, ok := schedFlags[f]
		if !ok {
			return fmt.Errorf("invalid scheduler flag %q", f)
		}
		attr.Flags |= v
	}
	if err := sys.SchedSetAttr(attr); err != nil {
		return fmt.Errorf("set scheduler %s: %w", s.Policy, err)
	}
	return nil
}

var ioPrioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT: 1, specs.IOPRIO_CLASS_BE: 2, specs.IOPRIO_CLASS_IDLE: 3,
}

func setIOPriority(sys Syscalls, p *specs.LinuxIOPriority) error {
	class, ok := ioPrioClasses[p.Class]
	if !ok {
		return fmt.Errorf("invalid ioPriority class %q", p.Class)
	}
	const classShift = 13
	if err := sys.IoprioSet(class<<classShift | p.Priority); err != nil {
		return fmt.Errorf("set ioPriority %s/%d: %w", p.Class, p.Priority, err)
	}
	return nil
}
