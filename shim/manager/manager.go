// Package manager implements the shim manager, pkg/shim's entry points that
// run as short-lived processes: "start" launches the long-running shim
// server, "delete" cleans up after a shim that died, and "-info" describes
// the runtime.
package manager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/containerd/v2/defaults"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"github.com/opencontainers/runtime-spec/specs-go/features"
	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/bundle"
	"github.com/hostnet-dev/hostnet/shim/config"
	"github.com/hostnet-dev/hostnet/shim/ociruntime"
	"github.com/hostnet-dev/hostnet/shim/shimcgroup"
	"github.com/hostnet-dev/hostnet/shim/task"
)

// RuntimeName is the name containerd knows this shim by.
const RuntimeName = "io.containerd.hostnet.v1"

// Version and Revision identify the shim build; set them with -ldflags -X.
var (
	Version  = "dev"
	Revision = ""
)

type manager struct {
	name string
}

// New returns the shim manager for the runtime called name.
func New(name string) shim.Shim {
	return manager{name: name}
}

func (m manager) Name() string {
	return m.name
}

// groupAnnotations name the shim a container shares with others, first match
// winning: containerd's grouping annotation, then the CRI's pod sandbox. A
// container that has neither gets a shim of its own.
var groupAnnotations = []string{
	"io.containerd.runc.v2.group",
	"io.kubernetes.cri.sandbox-id",
}

// Start launches the shim server for a container and returns the address
// containerd connects to. Containers of one group (a pod) share a shim: the
// socket's path is derived from the group, and if that group's shim already
// serves, its address is returned instead of starting another.
func (m manager) Start(ctx context.Context, params *bootapi.BootstrapParams) (_ *bootapi.BootstrapResult, retErr error) {
	id := params.GetInstanceID()
	grpcAddress := params.GetContainerdGrpcAddress()
	socketDir := params.GetSocketDir()
	if socketDir == "" {
		socketDir = filepath.Join(defaults.DefaultStateDir, "s")
	}
	// containerd runs `start` in the container's bundle.
	group, err := groupID(bundle.New("."), id)
	if err != nil {
		return nil, err
	}

	// A path socket, never an abstract one: a host-network container shares
	// the host's abstract socket namespace and could connect to it.
	address, err := shim.CreateSocketAddress(ctx, socketDir, grpcAddress, group, false)
	if err != nil {
		return nil, err
	}
	l, err := listen(address)
	if err != nil {
		if errors.Is(err, errdefs.ErrAlreadyExists) {
			// The group's shim is serving: the container joins it.
			return result(address), nil
		}
		return nil, err
	}
	defer func() {
		if retErr != nil {
			_ = shim.RemoveSocket(address)
		}
	}()
	// The server gets its own copy of the listening socket; ours must not
	// take the socket's path with it when closed.
	l.SetUnlinkOnClose(false)
	defer l.Close()
	sock, err := l.File()
	if err != nil {
		return nil, fmt.Errorf("failed to get shim socket file: %w", err)
	}
	defer sock.Close()

	debug := params.GetLogLevel() <= bootapi.LogLevel_LOG_LEVEL_DEBUG
	// The server is named after its group: pkg/shim derives the socket it
	// removes on exit from -id.
	cmd, err := serverCommand(ctx, group, grpcAddress, debug)
	if err != nil {
		return nil, err
	}
	// pkg/shim serves on fd 3 when no -socket flag is given.
	cmd.ExtraFiles = []*os.File{sock}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("failed to start shim server: %w", err)
	}
	defer func() {
		if retErr != nil {
			_ = cmd.Process.Kill()
		}
	}()
	// The server outlives us; reap it only if it dies while we still run.
	go cmd.Wait()

	if err := shimcgroup.Join(params, cmd.Process.Pid); err != nil {
		return nil, err
	}

	if err := shim.AdjustOOMScore(cmd.Process.Pid); err != nil {
		return nil, fmt.Errorf("failed to adjust OOM score of shim server: %w", err)
	}
	return result(address), nil
}

// groupID returns the shim group of the container id in bundle b.
func groupID(b bundle.Bundle, id string) (string, error) {
	// Only the annotations: the create reads the spec whole.
	spec, err := b.ReadSpecHead()
	if err != nil {
		return "", fmt.Errorf("container %s: %w", id, err)
	}
	for _, a := range groupAnnotations {
		if g := spec.Annotations[a]; g != "" {
			return g, nil
		}
	}
	return id, nil
}

func result(address string) *bootapi.BootstrapResult {
	return &bootapi.BootstrapResult{Version: 3, Protocol: "ttrpc", Address: address}
}

// listen creates the shim's socket. A leftover socket nobody serves (a shim
// that crashed) is replaced; a live one means the shim already runs.
func listen(address string) (*net.UnixListener, error) {
	l, err := shim.NewSocket(address)
	if err == nil {
		return l, nil
	}
	if !shim.SocketEaddrinuse(err) {
		return nil, fmt.Errorf("failed to create shim socket %s: %w", address, err)
	}
	if shim.CanConnect(address) {
		return nil, fmt.Errorf("shim socket %s: %w", address, errdefs.ErrAlreadyExists)
	}
	if err := shim.RemoveSocket(address); err != nil {
		return nil, fmt.Errorf("failed to remove stale shim socket %s: %w", address, err)
	}
	l, err = shim.NewSocket(address)
	if err != nil {
		return nil, fmt.Errorf("failed to create shim socket %s: %w", address, err)
	}
	return l, nil
}

// serverCommand re-executes this binary, without an action, as the server.
func serverCommand(ctx context.Context, id, grpcAddress string, debug bool) (*exec.Cmd, error) {
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("failed to locate shim executable: %w", err)
	}
	cwd, err := os.Getwd()
	if err != nil {
		return nil, err
	}
	args := []string{"-namespace", ns, "-id", id, "-address", grpcAddress}
	if debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = cwd // the bundle
	cmd.Env = serverEnv(os.Environ())
	// Its own process group, so that signals for containerd's group (^C on
	// a foreground containerd) do not kill containers.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd, nil
}

// serverGOMAXPROCS is the server's GOMAXPROCS. containerd starts every
// shim with GOMAXPROCS=2 (core/runtime/v2's shim command) unless its own
// environment sets one, and pkg/shim picks 2 when none is set. Each P keeps
// its own allocation caches, GC worker and threads, and a shim, which
// mostly waits on its containers, has no use for a second one: with 1, an
// idle shim's private memory after pkg/shim's FreeOSMemory is 2.1 MB
// instead of 2.9 (issue 14; make bench's memory section measures it with
// containers). The server's children (the OCI runtime) inherit it; runc and
// hostnet-runc give a container's processes the spec's environment only.
const serverGOMAXPROCS = "1"

// containerdGOMAXPROCS is the GOMAXPROCS containerd gives its shims.
const containerdGOMAXPROCS = "2"

// serverEnv is the server's environment: env with GOMAXPROCS set to
// serverGOMAXPROCS where env has none or containerd's, so that a value an
// operator gave containerd (which containerd then passes on instead of
// its own) is kept.
func serverEnv(env []string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		v, ok := strings.CutPrefix(kv, "GOMAXPROCS=")
		if !ok {
			out = append(out, kv)
			continue
		}
		if v != containerdGOMAXPROCS && v != "" {
			return env
		}
	}
	return append(out, "GOMAXPROCS="+serverGOMAXPROCS)
}

// Stop cleans up the container of a shim that is gone: containerd runs
// `shim delete` in the bundle. It reports the exit the shim recorded, else
// SIGKILL's, as the runtime's forced delete kills what is left.
func (m manager) Stop(ctx context.Context, id string) (shim.StopStatus, error) {
	b, err := bundlePath(ctx)
	if err != nil {
		return shim.StopStatus{}, err
	}
	logger := log.G(ctx).WithField("id", id)
	var rt ociruntime.Launcher
	var cfg ociruntime.Config
	err = b.ReadRuntime(&cfg)
	if err == nil && cfg.Binary == "" {
		err = errors.New("the runtime config names no runtime binary")
	}
	switch {
	case err == nil:
		rt = ociruntime.New(cfg, b.RuntimeLog())
	case errors.Is(err, os.ErrNotExist):
		// The shim died before it asked the runtime for anything, or its
		// delete left the runtime nothing (deleteInit removes the record
		// then): no runtime to ask.
	default:
		logger.WithError(err).Warn("cannot tell which runtime created the container")
	}
	// The forced delete kills every process left in the container.
	if err := task.Teardown(ctx, b, id, rt, true); err != nil {
		logger.WithError(err).Warn("failed to clean up after the shim")
	}
	killedAt := time.Now()
	removeDeadSocket(ctx, b)

	if e, err := b.ReadExit(); err == nil {
		return shim.StopStatus{Pid: e.Pid, ExitStatus: e.Status, ExitedAt: e.Timestamp}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		logger.WithError(err).Warn("failed to read recorded exit status")
	}
	pid, err := b.ReadInitPid()
	if err != nil {
		pid = 0
	}
	return shim.StopStatus{
		Pid:        pid,
		ExitStatus: 128 + int(unix.SIGKILL),
		ExitedAt:   killedAt,
	}, nil
}

// removeDeadSocket removes the socket a dead shim could not remove itself.
func removeDeadSocket(ctx context.Context, b bundle.Bundle) {
	address := b.ShimAddress()
	if !strings.HasPrefix(address, "unix://") {
		return
	}
	if shim.CanConnect(address) {
		return // not dead after all: it will clean up after itself
	}
	if err := shim.RemoveSocket(address); err != nil && !errors.Is(err, os.ErrNotExist) {
		log.G(ctx).WithError(err).Warn("failed to remove shim socket")
	}
}

func bundlePath(ctx context.Context) (bundle.Bundle, error) {
	if opts, ok := ctx.Value(shim.OptsKey{}).(shim.Opts); ok && opts.BundlePath != "" {
		return bundle.New(opts.BundlePath), nil
	}
	// containerd runs shim actions with the bundle as working directory.
	dir, err := os.Getwd()
	return bundle.New(dir), err
}

// Info describes the shim and, if the runtime binary can be found and
// answers `features`, what the runtime supports: the runtime the options
// select, in any form a create takes (runc's options, hostnet's TOML through
// ConfigPath or ConfigBody, or none: the node's file, config.LoadNode), read
// by config.FromOptions as a create reads them. containerd's CRI
// derives a handler's user_namespaces and recursive_read_only_mounts from
// these features, and a task create with idmapped mounts checks them.
func (m manager) Info(ctx context.Context, optionsR io.Reader) (*types.RuntimeInfo, error) {
	info := &types.RuntimeInfo{
		Name:    m.name,
		Version: &types.RuntimeVersion{Version: Version, Revision: Revision},
	}
	data, err := io.ReadAll(optionsR)
	if err != nil {
		return nil, fmt.Errorf("failed to read runtime options: %w", err)
	}
	if len(data) > 0 {
		info.Options = &anypb.Any{}
		if err := proto.Unmarshal(data, info.Options); err != nil {
			return nil, fmt.Errorf("failed to read runtime options: %w", err)
		}
	}
	// The features are those of the runtime these options select, read from
	// runc's options, hostnet's TOML or the node's file alike.
	settings, err := config.FromOptions(info.Options, "", "")
	if err != nil {
		return nil, err
	}
	binary := settings.Runtime.Binary
	feat, err := runtimeFeatures(ctx, binary)
	if err != nil {
		log.G(ctx).WithError(err).Debug("runtime does not report its features")
		return info, nil
	}
	if info.Features, err = typeurl.MarshalAnyToProto(feat); err != nil {
		return nil, fmt.Errorf("failed to marshal runtime features: %w", err)
	}
	return info, nil
}

func runtimeFeatures(ctx context.Context, binary string) (*features.Features, error) {
	out, err := exec.CommandContext(ctx, binary, "features").Output()
	if err != nil {
		return nil, fmt.Errorf("%s features: %w", binary, err)
	}
	var f features.Features
	if err := json.Unmarshal(out, &f); err != nil {
		return nil, fmt.Errorf("failed to parse %s features: %w", binary, err)
	}
	return &f, nil
}
