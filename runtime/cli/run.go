package cli

import (
	"context"
	"errors"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hostnet-dev/hostnet/runtime/container"
)

// runRun is create + start. In the foreground (without --detach) it
// forwards signals to the container, copies its terminal if it has one,
// waits for it and exits with its status, then deletes it unless --keep.
func runRun(g *globals, args []string) error {
	o := newCreateOpts(g)
	f := newFlags("run")
	createFlags(f, &o)
	var detach, keep, noSubreaper bool
	f.boolVar(&detach, "detach, d", "detach from the container's process")
	f.boolVar(&keep, "keep", "do not delete the container after it exits")
	f.boolVar(&noSubreaper, "no-subreaper", "disable the use of the subreaper used to reap reparented processes")
	pos, err := f.parse(args, exactly(1))
	if err != nil {
		return err
	}
	id := pos[0]
	if o.Spec, err = loadBundleSpec(o.Bundle); err != nil {
		return err
	}
	if err := checkTerminal(o.ConsoleSocket, detach, o.Spec.Process.Terminal); err != nil {
		return err
	}
	var fg *foreground
	var t *tty
	if !detach {
		fg = newForeground(g.log, !noSubreaper)
		defer fg.stop()
		if o.Spec.Process.Terminal {
			if t, err = newTTY(o.Spec.Process); err != nil {
				return err
			}
			defer t.close()
			o.Console = t.conn
		}
	}
	if err := container.Create(g.root, id, o); err != nil {
		return err
	}
	c, err := container.Load(g.root, id)
	if err != nil {
		return err
	}
	if t != nil {
		if err := t.attach(); err != nil {
			_ = c.Delete(true)
			return err
		}
	}
	var hookWarning *container.HookWarning
	if err := c.Start(context.Background()); err != nil && !errors.As(err, &hookWarning) {
		_ = c.Delete(true)
		return err
	} else if err != nil {
		g.log.Warnf("%s", err)
	}
	if detach {
		return nil
	}
	// The init is our own child: create forked it.
	status := fg.wait(c.InitPid, t)
	t.close()
	if !keep {
		if err := c.Delete(true); err != nil && !errors.As(err, &hookWarning) {
			return err
		} else if err != nil {
			g.log.Warnf("%s", err)
		}
	}
	return exitError(status)
}

// loadBundleSpec reads the bundle's config.json.
func loadBundleSpec(bundle string) (*specs.Spec, error) {
	abs, err := filepath.Abs(bundle)
	if err != nil {
		return nil, err
	}
	return container.LoadSpec(abs)
}

// checkTerminal refuses what runc refuses: a detached process with a
// terminal needs a console socket to send it to, and a console socket is
// only for a detached process with a terminal (else whoever listens on it
// would wait for a terminal that never comes).
func checkTerminal(consoleSocket string, detach, terminal bool) error {
	if detach && terminal && consoleSocket == "" {
		return errors.New("cannot allocate tty if runc will detach without setting console socket")
	}
	if (!detach || !terminal) && consoleSocket != "" {
		return errors.New("cannot use console socket if runc will not detach or allocate tty")
	}
	return nil
}
