package manager

// The `start` of containerd before 2.3.
//
// containerd 2.3 and later start a shim with a bootstrap protocol: `shim
// -namespace NS -address ADDR -publish-binary BIN -id ID start`, with a
// protobuf BootstrapParams (api/runtime/bootstrap/v1) on stdin, and read a
// protobuf BootstrapResult from its stdout. pkg/shim (2.3 and later) speaks
// only that and refuses anything else with "shim was started through the
// deprecated API but was built against the new API".
//
// containerd 1.7 and 2.0 to 2.2 run the same command line with the same
// environment (TTRPC_ADDRESS, GRPC_ADDRESS, NAMESPACE, MAX_SHIM_VERSION=2),
// but put the runtime options (a protobuf Any), or nothing, on stdin, and
// read the shim's address from stdout: either the bare address, which
// means task API v2 over ttrpc, or JSON {"version":N,"protocol":...,
// "address":...}. 1.7 takes versions up to 2 only; 2.0 to 2.2 also take 3,
// the task API v3. As the two callers cannot be told apart by their
// invocation, a legacy start here answers with the bare address, which both
// understand, and the shim serves task API v2 next to v3 (see
// shim/task/taskv2.go). containerd 1.7 also reloads a shim after a restart
// from an `address` file in the bundle that the shim writes; 2.0 to 2.2 use
// the bootstrap.json they write themselves.
//
// Run tells the two protocols apart by what is on stdin, as pkg/shim does:
// only BootstrapParams naming the -id and -namespace of the command line
// are the new protocol, and those it hands to pkg/shim untouched.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	bootapi "github.com/containerd/containerd/api/runtime/bootstrap/v1"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf/proto"
	"github.com/containerd/containerd/v2/pkg/shim"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/hostnet-dev/hostnet/shim/bundle"
)

// maxStartInput bounds what `start` reads from stdin, as pkg/shim does.
const maxStartInput = 10 << 20

// ttrpcAddressEnv is how containerd before 2.3 passes its ttrpc address
// (for events) to `start`; the server inherits it from there.
const ttrpcAddressEnv = "TTRPC_ADDRESS"

// Run runs the shim binary: pkg/shim's RunShim, with `start` from
// containerd 1.7 and 2.0 to 2.2 answered here. It does not return.
func Run(ctx context.Context, m shim.Shim) {
	inv, ok := parseInvocation(os.Args[1:])
	if ok && inv.action == "start" {
		input, err := io.ReadAll(io.LimitReader(os.Stdin, maxStartInput))
		if err != nil {
			exit(m, fmt.Errorf("failed to read stdin: %w", err))
		}
		if !isBootstrapParams(input, inv) {
			exit(m, legacyStart(ctx, m, inv, input, os.Stdout))
		}
		// pkg/shim reads the parameters from stdin again.
		if err := replayStdin(input); err != nil {
			exit(m, err)
		}
	}
	shim.RunShim(ctx, m)
	os.Exit(0)
}

// exit ends the process the way pkg/shim does: an error on stderr, which
// containerd shows the user, and exit status 1.
func exit(m shim.Shim, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %s", m.Name(), err)
		os.Exit(1)
	}
	os.Exit(0)
}

// invocation is the shim's command line, parsed with pkg/shim's flags.
type invocation struct {
	namespace, id, address, publishBinary, bundle string
	debug                                         bool
	action                                        string
}

// parseInvocation parses args with the flags pkg/shim defines. ok is false
// for a command line pkg/shim would reject; it reports that itself.
func parseInvocation(args []string) (inv invocation, ok bool) {
	fs := flag.NewFlagSet("shim", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var ignoredBool bool
	var ignored string
	fs.BoolVar(&inv.debug, "debug", false, "")
	fs.BoolVar(&ignoredBool, "v", false, "")
	fs.BoolVar(&ignoredBool, "version", false, "")
	fs.BoolVar(&ignoredBool, "info", false, "")
	fs.StringVar(&inv.namespace, "namespace", "", "")
	fs.StringVar(&inv.id, "id", "", "")
	fs.StringVar(&ignored, "socket", "", "")
	fs.StringVar(&ignored, "debug-socket", "", "")
	fs.StringVar(&inv.bundle, "bundle", "", "")
	fs.StringVar(&inv.address, "address", "", "")
	fs.StringVar(&inv.publishBinary, "publish-binary", "", "")
	if err := fs.Parse(args); err != nil {
		return invocation{}, false
	}
	inv.action = fs.Arg(0)
	return inv, true
}

// isBootstrapParams reports whether input is containerd 2.3's
// BootstrapParams for this invocation. Runtime options (an Any) can decode
// as BootstrapParams too, so, like pkg/shim, it checks the identity they
// carry against the command line.
func isBootstrapParams(input []byte, inv invocation) bool {
	if len(input) == 0 {
		return false
	}
	var params bootapi.BootstrapParams
	if err := proto.Unmarshal(input, &params); err != nil {
		return false
	}
	return params.GetInstanceID() == inv.id && params.GetNamespace() == inv.namespace
}

// replayStdin makes os.Stdin read input again from its start.
func replayStdin(input []byte) error {
	r, w, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("failed to replay stdin: %w", err)
	}
	go func() {
		// Larger than the pipe's buffer only with a reader at the other end.
		_, _ = w.Write(input)
		w.Close()
	}()
	os.Stdin = r
	return nil
}

// legacyStart is `start` for containerd 1.7 and 2.0 to 2.2: it builds the
// BootstrapParams containerd 2.3 would have sent from the command line,
// the environment and the runtime options on stdin, starts the shim
// through the manager like any other start, writes the `address` file
// containerd 1.7 needs, and prints the bare address.
func legacyStart(ctx context.Context, m shim.Shim, inv invocation, input []byte, stdout io.Writer) error {
	if inv.namespace == "" {
		return errors.New("shim namespace cannot be empty")
	}
	params := &bootapi.BootstrapParams{
		InstanceID:             inv.id,
		Namespace:              inv.namespace,
		ContainerdGrpcAddress:  inv.address,
		ContainerdTtrpcAddress: os.Getenv(ttrpcAddressEnv),
		ContainerdBinary:       inv.publishBinary,
		LogLevel:               bootapi.LogLevel_LOG_LEVEL_INFO,
	}
	if inv.debug {
		params.LogLevel = bootapi.LogLevel_LOG_LEVEL_DEBUG
	}
	if len(input) > 0 {
		// containerd 2.3 passes the runtime options as an extension.
		var opts anypb.Any
		if err := proto.Unmarshal(input, &opts); err != nil || opts.GetTypeUrl() == "" {
			return fmt.Errorf("start: stdin holds neither bootstrap parameters nor runtime options (%d bytes)", len(input))
		}
		if err := params.AddExtension(&opts); err != nil {
			return err
		}
	}
	ctx = namespaces.WithNamespace(ctx, inv.namespace)
	ctx = context.WithValue(ctx, shim.OptsKey{}, shim.Opts{BundlePath: inv.bundle, Debug: inv.debug})
	result, err := m.Start(ctx, params)
	if err != nil {
		return err
	}
	if p := result.GetProtocol(); p != "ttrpc" {
		return fmt.Errorf("start: containerd before 2.3 needs a ttrpc shim, not %q", p)
	}
	// containerd runs `start` in the bundle; 1.7 reloads the address from
	// there after a restart.
	if err := bundle.New(".").WriteAddress(result.GetAddress()); err != nil {
		return fmt.Errorf("failed to write shim address: %w", err)
	}
	_, err = io.WriteString(stdout, result.GetAddress())
	return err
}
