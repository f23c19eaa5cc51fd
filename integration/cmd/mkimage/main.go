// Command mkimage writes the busybox OCI image archive that hostnet's
// integration tests, benchmarks and demo import with `ctr images import`.
//
//	mkimage -o busybox.tar [-name docker.io/hostnet/busybox:test] [-busybox /bin/busybox]
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/hostnet-dev/hostnet/integration/internal/image"
)

func main() {
	out := flag.String("o", "busybox.tar", "output archive")
	name := flag.String("name", image.DefaultName, "image reference recorded in the archive")
	busybox := flag.String("busybox", image.DefaultBusybox, "statically linked busybox binary")
	flag.Parse()

	res, err := image.WriteFile(*out, image.Options{Busybox: *busybox, Name: *name})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
	fmt.Printf("%s %s\n", res.Name, res.Manifest.Digest)
}
