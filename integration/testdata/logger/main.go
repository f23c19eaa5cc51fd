// Command logger is a containerd shim logging binary for the integration
// tests (`--log-uri binary:///path/to/logger?file=/path/to/out`).
//
// The shim's protocol: the container's stdout is readable on fd 3 and its
// stderr on fd 4; closing fd 5 tells the shim the logger is ready. The
// container's id and namespace come in CONTAINER_ID and CONTAINER_NAMESPACE,
// and each query parameter of the URI as two arguments, key then value.
//
// Every line is written to the file as "stdout: <line>" or "stderr: <line>",
// after a first line "logger id=<id> namespace=<ns>".
package main

import (
	"bufio"
	"fmt"
	"os"
	"sync"
)

func main() {
	var path string
	for i := 1; i+1 < len(os.Args); i += 2 {
		if os.Args[i] == "file" {
			path = os.Args[i+1]
		}
	}
	if path == "" {
		fmt.Fprintln(os.Stderr, "logger: no file argument")
		os.Exit(2)
	}
	out, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, "logger:", err)
		os.Exit(1)
	}
	defer out.Close()
	fmt.Fprintf(out, "logger id=%s namespace=%s\n", os.Getenv("CONTAINER_ID"), os.Getenv("CONTAINER_NAMESPACE"))

	stdout := os.NewFile(3, "stdout")
	stderr := os.NewFile(4, "stderr")
	ready := os.NewFile(5, "ready")
	if stdout == nil || stderr == nil || ready == nil {
		fmt.Fprintln(os.Stderr, "logger: fds 3, 4 and 5 must be open")
		os.Exit(1)
	}

	var mu sync.Mutex
	var wg sync.WaitGroup
	copyLines := func(tag string, f *os.File) {
		defer wg.Done()
		s := bufio.NewScanner(f)
		for s.Scan() {
			mu.Lock()
			fmt.Fprintf(out, "%s: %s\n", tag, s.Text())
			out.Sync()
			mu.Unlock()
		}
	}
	wg.Add(2)
	go copyLines("stdout", stdout)
	go copyLines("stderr", stderr)
	// Ready: the shim may now start the container.
	if err := ready.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "logger: close fd 5:", err)
		os.Exit(1)
	}
	wg.Wait()
}
