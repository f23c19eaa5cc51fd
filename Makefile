# hostnet: a containerd shim v2 (io.containerd.hostnet.v1) and its OCI
# runtime, hostnet-runc. `make help` lists the targets.

GO          ?= go
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(CURDIR)/bin
# Both binaries are pure Go; set CGO_ENABLED=1 to build with cgo.
CGO_ENABLED ?= 0
export CGO_ENABLED

VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
MODULE   := github.com/hostnet-dev/hostnet
LDFLAGS  := -s -w -X $(MODULE)/shim/manager.Version=$(VERSION) \
            -X $(MODULE)/shim/manager.Revision=$(REVISION) \
            -X $(MODULE)/runtime/cli.Version=$(VERSION)
GOBUILD  := $(GO) build -trimpath -ldflags '$(LDFLAGS)'

BINARIES := containerd-shim-hostnet-v1 hostnet-runc
# Unit tests: the packages that exist in this checkout.
UNIT_PKGS := $(foreach d,spec shim runtime,$(if $(wildcard $(d)),./$(d)/...))

# Benchmark iterations per runtime (go test -benchtime=Nx).
BENCH_RUNS ?= 20

.PHONY: all build install test unit integration bench clean lint demo setup help

all: build

help:
	@echo "build        build bin/containerd-shim-hostnet-v1 and bin/hostnet-runc"
	@echo "install      install them into \$$(DESTDIR)\$$(PREFIX)/bin ($(DESTDIR)$(PREFIX)/bin)"
	@echo "test         unit tests, then integration tests against a private containerd (root)"
	@echo "bench        hostnet vs runc: ctr run lifecycle and --version start-up (root)"
	@echo "lint         gofmt and go vet"
	@echo "setup        install what is missing: Debian packages, containerd v2.4.2 (root)"
	@echo "demo         setup, then a host-network container on a private containerd (root)"
	@echo "clean        remove bin/"

build:
	@mkdir -p $(BINDIR)
	$(GOBUILD) -o $(BINDIR)/containerd-shim-hostnet-v1 ./shim/cmd/containerd-shim-hostnet-v1
	$(GOBUILD) -o $(BINDIR)/hostnet-runc ./runtime/cmd/hostnet-runc

install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix $(BINDIR)/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/

test: unit integration

unit:
	$(GO) test $(UNIT_PKGS) ./integration/internal/...

# Runs as root: the tests start containerd and containers.
integration: build
	HOSTNET_BIN_DIR=$(BINDIR) HOSTNET_RUNC=$(BINDIR)/hostnet-runc \
		$(GO) test -v -count=1 -timeout 20m ./integration/ ./integration/ociruntime/

bench: build
	HOSTNET_BIN_DIR=$(BINDIR) $(GO) test -run '^$$' -bench . -benchtime $(BENCH_RUNS)x -count 1 -timeout 30m ./integration/bench/
	@if command -v hyperfine >/dev/null && command -v runc >/dev/null; then \
		hyperfine -N --warmup 5 --runs 50 '$(BINDIR)/hostnet-runc --version' 'runc --version'; \
	fi

lint:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt -l:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

setup:
	contrib/setup.sh

demo:
	contrib/demo.sh

clean:
	rm -rf $(BINDIR)
