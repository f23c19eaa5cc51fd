package initproc

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// applyLSM sets the AppArmor profile and SELinux label the process will run
// under once it execs. A label the host cannot enforce is an error, as with
// runc: running the container unconfined instead would be a silent
// downgrade.
func applyLSM(sys Syscalls, apparmorProfile, selinuxLabel string) error {
	if apparmorProfile != "" {
		if !apparmorEnabled() {
			return fmt.Errorf("AppArmor profile %q is set but AppArmor is not enabled on this host", apparmorProfile)
		}
		if err := writeAttr(sys, "apparmor/exec", "attr/exec", "exec "+apparmorProfile); err != nil {
			return fmt.Errorf("set AppArmor profile %q: %w", apparmorProfile, err)
		}
	}
	if selinuxLabel != "" {
		if !selinuxEnabled() {
			return fmt.Errorf("SELinux label %q is set but SELinux is not enabled on this host", selinuxLabel)
		}
		if err := sys.WriteProcFile("/proc/thread-self/attr/exec", selinuxLabel); err != nil { // procfs-literal: writeProcFile opens it in a procfs of its own
			return fmt.Errorf("set SELinux label %q: %w", selinuxLabel, err)
		}
	}
	return nil
}

// writeAttr writes the LSM-specific attribute file when the kernel has it,
// else the legacy shared one.
func writeAttr(sys Syscalls, specific, legacy, value string) error {
	err := sys.WriteProcFile("/proc/thread-self/attr/"+specific, value) // procfs-literal: writeProcFile opens it in a procfs of its own
	if errors.Is(err, os.ErrNotExist) {
		err = sys.WriteProcFile("/proc/thread-self/"+legacy, value) // procfs-literal: writeProcFile opens it in a procfs of its own
	}
	return err
}

func apparmorEnabled() bool {
	data, err := os.ReadFile("/sys/module/apparmor/parameters/enabled")
	return err == nil && strings.HasPrefix(string(data), "Y")
}

func selinuxEnabled() bool {
	_, err := os.Stat("/sys/fs/selinux/enforce")
	return err == nil
}
