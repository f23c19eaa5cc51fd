package task

import (
	"context"
	"errors"
	"fmt"

	"github.com/containerd/containerd/v2/core/mount"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/network"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
)

// Teardown undoes what creating container id of bundle b set up on the
// host, in the reverse order of its create: the runtime's state (with
// force, killing what is left of the container), the network, the root
// file system the shim mounted. Each step finds what it undoes in the
// bundle or the runtime, not in the shim's memory, is a no-op when there is
// nothing to undo, and runs whatever the steps before it did; the errors
// are joined, and a second Teardown retries what failed.
//
// Every container ends here: task Delete, a failed create, and `shim
// delete` after its shim died. rt is nil when the runtime holds no state
// of the container.
func Teardown(ctx context.Context, b bundle.Bundle, id string, rt ociruntime.Launcher, force bool) error {
	var errs []error
	if rt != nil {
		if err := rt.Delete(ctx, id, force); err != nil {
			errs = append(errs, err)
		}
	}
	if err := network.Teardown(ctx, b); err != nil {
		errs = append(errs, err)
	}
	if err := mount.UnmountRecursive(b.Rootfs(), 0); err != nil {
		errs = append(errs, fmt.Errorf("failed to unmount rootfs %s: %w", b.Rootfs(), err))
	}
	return errors.Join(errs...)
}
