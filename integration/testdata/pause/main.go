// Command pause is the CRI integration tests' sandbox ("pause") image: it
// blocks until SIGTERM or SIGINT and exits 0, like Kubernetes' pause. It is
// built with CGO_ENABLED=0 so the image needs nothing but this binary.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM, syscall.SIGINT)
	<-sigc
}
