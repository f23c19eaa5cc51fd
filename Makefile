# hostnet: a containerd shim v2 (io.containerd.hostnet.v1) and its OCI
# runtime, hostnet-runc. `make help` lists the targets.

GO          ?= go
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(CURDIR)/bin
# Both binaries are pure Go and built static: hostnet-runc runs inside
# containers as their init, where no dynamic loader exists (a dynamically
# linked build refuses to run).
CGO_ENABLED ?= 0
export CGO_ENABLED

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
MODULE   := github.com/hostnet-dev/hostnet
LDFLAGS  := -s -w -X $(MODULE)/shim/manager.Version=$(VERSION) \
            -X $(MODULE)/shim/manager.Revision=$(REVISION) \
            -X $(MODULE)/runtime/cli.Version=$(VERSION)
GOBUILD  := $(GO) build -trimpath -ldflags '$(LDFLAGS)'

BINARIES := containerd-shim-hostnet-v1 hostnet-runc hostnet
# Unit tests: the packages that exist in this checkout.
UNIT_PKGS := $(foreach d,spec shim runtime internal,$(if $(wildcard $(d)),./$(d)/...))

# Benchmark runs per contender of each timed step.
BENCH_RUNS ?= 20

.PHONY: all build install uninstall test unit integration test-cgroup2 conformance bench clean lint fuzz demo setup help test-kube test-nerdctl

all: build

help:
	@echo "build        build bin/containerd-shim-hostnet-v1, bin/hostnet-runc and bin/hostnet"
	@echo "install      install them into \$$(DESTDIR)\$$(PREFIX)/bin ($(DESTDIR)$(PREFIX)/bin)"
	@echo "uninstall    remove exactly what install installed from \$$(DESTDIR)\$$(PREFIX)/bin"
	@echo "test         unit tests, then integration tests against a private containerd (root)"
	@echo "test-cgroup2 the tests in a QEMU guest with systemd and cgroup v2 (root)"
	@echo "conformance  OCI runtime-tools validation suite, hostnet-runc vs runc (root)"
	@echo "test-kube    a single-node Kubernetes 1.37 running pods with RuntimeClass hostnet (root)"
	@echo "test-nerdctl nerdctl 2.2.1 driving hostnet: networks, -p, compose (root)"
	@echo "bench        hostnet vs runc, crun and CNI: tables, $(BENCH_OUT)/results.json, chart.svg (root)"
	@echo "lint         gofmt, go vet, golangci-lint and contrib/lint-procfs.sh"
	@echo "fuzz         run each fuzz target for FUZZTIME ($(FUZZTIME)); corpora in testdata/fuzz"
	@echo "setup        install what is missing: Debian packages, containerd v2.4.2 and 1.7/2.0/2.2 (root)"
	@echo "demo         setup, then a host-network container on a private containerd (root)"
	@echo "clean        remove bin/"

build:
	@mkdir -p $(BINDIR)
	$(GOBUILD) -o $(BINDIR)/containerd-shim-hostnet-v1 ./shim/cmd/containerd-shim-hostnet-v1
	$(GOBUILD) -o $(BINDIR)/hostnet-runc ./runtime/cmd/hostnet-runc
	$(GOBUILD) -o $(BINDIR)/hostnet ./shim/cmd/hostnet

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BINDIR)/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/

# The files install puts there, nothing else (not the directory, which
# other software shares). Stop hostnet's containers first: containerd runs
# the shim binary again to delete them.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(BINARIES))

test: unit integration

# -count=1: several packages build and run the binaries, which the test
# cache does not see change.
unit:
	$(GO) test -count=1 $(UNIT_PKGS) ./integration/internal/...

# Runs as root: the tests start containerd and containers.
integration: build
	HOSTNET_BIN_DIR=$(BINDIR) HOSTNET_RUNC=$(BINDIR)/hostnet-runc \
		$(GO) test -v -count=1 -timeout 20m ./integration/ ./integration/ociruntime/

# The cgroup v2 lane: unit, ociruntime and containerd integration tests in
# a Debian guest under QEMU, systemd as init, cgroup v2 only (root); see
# integration/cgroup2/run.sh.
test-cgroup2:
	integration/cgroup2/run.sh

# Client lanes (root). Each builds what it drives once into
# /var/cache/hostnet (counted in the lane's time on a fresh machine), then
# runs against a private containerd in a network namespace of its own.
test-kube: build
	contrib/build-kubernetes.sh
	HOSTNET_BIN_DIR=$(BINDIR) $(GO) test -v -count=1 -timeout 20m ./integration/kube/

test-nerdctl: build
	contrib/build-nerdctl.sh
	HOSTNET_BIN_DIR=$(BINDIR) $(GO) test -v -count=1 -timeout 15m ./integration/nerdctl/

# runc v1.5.2, the benchmark's anchor, built once from the Go module proxy.
RUNC_152 ?= /var/cache/hostnet/runc-v1.5.2/bin/runc
BENCH_OUT ?= bench-results
BENCH_ARGS ?=

# The OCI runtime-tools validation suite, hostnet-runc vs runc (root); fails
# if hostnet-runc fails a test runc passes.
conformance: build
	$(GO) run ./integration/conformance/cmd/oci-conformance -hostnet-runc $(BINDIR)/hostnet-runc \
		-md $(BINDIR)/conformance.md -json $(BINDIR)/conformance.json

bench: build
	@test -x $(RUNC_152) || { mkdir -p $(dir $(RUNC_152)) && \
		CGO_ENABLED=1 GOBIN=$(dir $(RUNC_152)) $(GO) install -tags 'seccomp urfave_cli_no_docs' github.com/opencontainers/runc@v1.5.2; }
	$(GO) build -o $(BINDIR)/hostnet-bench ./integration/bench/cmd/hostnet-bench
	$(BINDIR)/hostnet-bench -bin $(BINDIR) -runc $(RUNC_152) -n $(BENCH_RUNS) -out $(BENCH_OUT) $(BENCH_ARGS)

# golangci-lint v2 (.golangci.yml), which contrib/setup.sh builds once from
# the Go module proxy. Its first run on a machine type-checks everything
# cold (~3 min on 2 cores); later runs take seconds from its cache.
GOLANGCI_LINT_VERSION ?= v2.15.0
GOLANGCI_LINT ?= /var/cache/hostnet/golangci-lint-$(GOLANGCI_LINT_VERSION)/bin/golangci-lint

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	contrib/lint-procfs.sh
	@test -x $(GOLANGCI_LINT) || { echo "lint: no $(GOLANGCI_LINT): run contrib/setup.sh (make setup)" >&2; exit 1; }
	$(GOLANGCI_LINT) run --timeout 10m ./...

# Fuzz targets of the parsers of untrusted input, as package:Target. Each
# runs for FUZZTIME; their corpora (testdata/fuzz) also run with `go test`.
FUZZ_TARGETS := spec:FuzzParsePorts spec:FuzzModeFor spec:FuzzParseSysctl spec:FuzzCheckSysctls \
	spec:FuzzCapabilityNames spec:FuzzResolveMode spec:FuzzParseNerdctlNetworkConfig shim/config:FuzzParse shim/network:FuzzPrepare runtime/seccomp:FuzzCompile
# A count, not a duration: with a duration Go 1.26's fuzz coordinator may fail
# a target with "context deadline exceeded" and no input when time runs out
# (golang/go#75804, fixed in Go 1.27).
FUZZTIME ?= 50000x

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "fuzz ./$$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

setup:
	contrib/setup.sh

demo:
	contrib/demo.sh

clean:
	rm -rf $(BINDIR)
