// Package hooks runs OCI lifecycle hooks: each gets the container's state as
// JSON on stdin and must finish within its timeout.
package hooks

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Names lists the hook types this runtime runs, in lifecycle order, as
// `hostnet-runc features` reports them.
var Names = []string{"prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"}

// Run runs hooks in order and stops at the first failure. name is the hook
// type (prestart, createRuntime, ...) for the error message.
func Run(name string, hooks []specs.Hook, state *specs.State) error {
	if len(hooks) == 0 {
		return nil
	}
	stdin, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("encode state for %s hooks: %w", name, err)
	}
	for i, h := range hooks {
		if err := runOne(h, stdin); err != nil {
			return fmt.Errorf("error running %s hook #%d (%s): %w", name, i, h.Path, err)
		}
	}
	return nil
}

func runOne(h specs.Hook, stdin []byte) error {
	ctx := context.Background()
	if h.Timeout != nil {
		if *h.Timeout <= 0 {
			return fmt.Errorf("timeout must be positive, got %d", *h.Timeout)
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*h.Timeout)*time.Second)
		defer cancel()
	}
	args := h.Args
	if len(args) == 0 {
		args = []string{h.Path}
	}
	cmd := exec.CommandContext(ctx, h.Path)
	cmd.Args = args
	cmd.Env = h.Env
	if cmd.Env == nil {
		cmd.Env = []string{} // the spec's env, not ours
	}
	cmd.Stdin = bytes.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("timed out after %ds", *h.Timeout)
	}
	if err != nil {
		if msg := strings.TrimSpace(out.String()); msg != "" {
			return fmt.Errorf("%w, output: %s", err, msg)
		}
		return err
	}
	return nil
}
