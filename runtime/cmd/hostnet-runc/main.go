// Command hostnet-runc is hostnet's runc-compatible OCI runtime.
package main

import (
	"os"

	"github.com/hostnet-dev/hostnet/runtime/cli"
	"github.com/hostnet-dev/hostnet/runtime/initproc"
)

func main() {
	// The container init is this same binary re-executed; it skips the CLI.
	if len(os.Args) > 1 && os.Args[1] == initproc.Command {
		initproc.Main()
		return
	}
	os.Exit(cli.Main(os.Args[1:]))
}
