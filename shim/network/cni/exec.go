package cni

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/hostnet-dev/hostnet/shim/network/reaped"
)

// pluginExec is libcni's invoke.RawExec with the plugin waited for through
// the shim's reaper (package reaped): os/exec's own wait races it and can
// lose a plugin's exit status.
type pluginExec struct{ version.PluginDecoder }

func (pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, pluginPath)
	c.Env = environ
	c.Stdin = bytes.NewReader(stdinData)
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := reaped.Run(c); err != nil {
		return nil, pluginErr(err, stdout.Bytes(), stderr.Bytes())
	}
	// What a plugin says on stderr goes to the shim's log, as RawExec does.
	if stderr.Len() > 0 {
		_, _ = stderr.WriteTo(os.Stderr)
	}
	return stdout.Bytes(), nil
}

func (pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}

// pluginErr is RawExec's: the CNI error a failed plugin prints, else what
// it wrote and how it ended.
func pluginErr(err error, stdout, stderr []byte) error {
	var emsg types.Error
	if len(stdout) == 0 {
		if len(stderr) == 0 {
			emsg.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
		} else {
			emsg.Msg = fmt.Sprintf("netplugin failed: %q", strings.TrimSpace(string(stderr)))
		}
	} else if perr := json.Unmarshal(stdout, &emsg); perr != nil {
		emsg.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", string(stdout), perr)
	}
	return &emsg
}
