package daemon

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	hostnetns "github.com/hostnet-dev/hostnet/shim/network/netns"
)

// NetNSPath is the pinned network namespace containerd runs in when
// Config.NetNS is set, "" otherwise.
func (d *Daemon) NetNSPath() string {
	if !d.ownNetNS {
		return ""
	}
	return filepath.Join(d.Dir, "netns")
}

// createNetNS pins a new network namespace under Dir (Stop unmounts it
// with the rest) and brings its loopback up, for host-mode containers'
// 127.0.0.1.
func (d *Daemon) createNetNS() error {
	path := d.NetNSPath()
	if err := hostnetns.Create(path); err != nil {
		return err
	}
	h, err := d.Netlink()
	if err != nil {
		return err
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err == nil {
		err = h.LinkSetUp(lo)
	}
	if err != nil {
		return fmt.Errorf("loopback up in %s: %w", path, err)
	}
	return nil
}

// Netlink is a netlink handle in containerd's network namespace (the
// caller's if containerd has none of its own); close it after use.
func (d *Daemon) Netlink() (*netlink.Handle, error) {
	path := d.NetNSPath()
	if path == "" {
		return netlink.NewHandle()
	}
	ns, err := netns.GetFromPath(path)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	return netlink.NewHandleAt(ns)
}

// InNetNS is a command run in containerd's network namespace (NetNSPath),
// or in the caller's if containerd has none of its own, with the daemon's
// environment.
func (d *Daemon) InNetNS(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	if p := d.NetNSPath(); p != "" {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + p, "--", name}, args...)...)
	}
	cmd.Env = d.env
	return cmd
}

// DialContext dials from containerd's network namespace (the caller's if
// containerd has none of its own): the socket is made there, on a thread
// locked to it for the call, and stays there.
func (d *Daemon) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	path := d.NetNSPath()
	if path == "" {
		var dialer net.Dialer
		return dialer.DialContext(ctx, network, addr)
	}
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromPath(path)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		var dialer net.Dialer
		conn, err := dialer.DialContext(ctx, network, addr)
		// A thread that cannot go back stays locked and ends with this
		// goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{conn, err}
	}()
	r := <-ch
	return r.c, r.err
}
