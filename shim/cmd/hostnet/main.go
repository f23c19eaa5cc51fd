// Command hostnet shows the network of the containers hostnet runs on this
// node: `hostnet ps`, `hostnet ports`, and checks the node: `hostnet
// doctor`. See `hostnet --help`.
package main

import (
	"os"

	"github.com/hostnet-dev/hostnet/shim/inspect"
)

func main() {
	os.Exit(inspect.Main(os.Args[1:], os.Stdout, os.Stderr))
}
