#!/usr/bin/env bash
# Installs what hostnet's build, tests, benchmarks and demo need, and builds
# hostnet. Idempotent: it installs only what is missing, so a second run
# changes nothing. Needs root and, for Go, /usr/local/go or go on PATH.
#
#   CONTAINERD_VERSION   containerd release built with `go install` (v2.4.2)
#   HOSTNET_CACHE        where built containerd binaries are kept
#                        (/var/cache/hostnet/containerd-$CONTAINERD_VERSION)
#   HOSTNET_COMPAT_CONTAINERD  the older releases contrib/compat-containerd.sh
#                        builds for the compatibility test
set -euo pipefail

CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
HOSTNET_CACHE=${HOSTNET_CACHE:-/var/cache/hostnet/containerd-${CONTAINERD_VERSION}}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'setup: %s\n' "$*"; }

if [[ $(id -u) -ne 0 ]]; then
	echo "setup: run as root (sudo make setup)" >&2
	exit 1
fi
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
if ! command -v go >/dev/null; then
	echo "setup: go not found; install Go 1.26 into /usr/local/go" >&2
	exit 1
fi

# Debian packages: runtimes to compare with, busybox for the test image,
# networking tools, libseccomp, benchmark tools (strace: make bench's
# breakdown), and systemd with
# util-linux's unshare/nsenter (the systemd cgroup driver's tests boot
# systemd in a sandbox; it is not made this host's init), and for the
# cgroup v2 lane QEMU, mmdebstrap and e2fsprogs (integration/cgroup2).
packages=(runc crun containernetworking-plugins busybox-static iptables nftables
	iproute2 libseccomp-dev hyperfine iperf3 strace git make ca-certificates systemd util-linux
	qemu-system-x86 mmdebstrap e2fsprogs)
missing=()
for p in "${packages[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
else
	log "Debian packages present"
fi

# containerd, ctr and the runc shim, built from source at a fixed release.
bins=(containerd ctr containerd-shim-runc-v2)
need_build=0
for b in "${bins[@]}"; do
	[[ -x $HOSTNET_CACHE/bin/$b ]] || need_build=1
done
if ((need_build)); then
	log "building containerd ${CONTAINERD_VERSION} into ${HOSTNET_CACHE}/bin"
	mkdir -p "$HOSTNET_CACHE/bin"
	GOBIN=$HOSTNET_CACHE/bin CGO_ENABLED=0 go install \
		"github.com/containerd/containerd/v2/cmd/containerd@${CONTAINERD_VERSION}" \
		"github.com/containerd/containerd/v2/cmd/ctr@${CONTAINERD_VERSION}" \
		"github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@${CONTAINERD_VERSION}"
else
	log "containerd ${CONTAINERD_VERSION} present in ${HOSTNET_CACHE}/bin"
fi
for b in "${bins[@]}"; do
	target=/usr/local/bin/$b
	if [[ -L $target && $(readlink "$target") == "$HOSTNET_CACHE/bin/$b" ]]; then
		continue
	fi
	if [[ -e $target ]]; then
		# Keep a binary installed otherwise if it is the same release.
		version=$("$target" --version 2>/dev/null || true)
		if [[ $version == *"${CONTAINERD_VERSION#v}"* ]]; then
			continue
		fi
		mv "$target" "$target.hostnet-backup"
		log "moved $target (${version:-unknown version}) to $target.hostnet-backup"
	fi
	ln -sfn "$HOSTNET_CACHE/bin/$b" "$target"
done

# containerd 1.7, 2.0 and 2.2 (containerd and ctr only), which
# integration/compat_test.go runs hostnet under.
"$REPO/contrib/compat-containerd.sh"

# runc v1.5.2, the reference the tests and `make bench` compare hostnet-runc
# with (Debian's runc is 1.1.5), built once with seccomp support.
RUNC_VERSION=${RUNC_VERSION:-v1.5.2}
RUNC_CACHE=/var/cache/hostnet/runc-${RUNC_VERSION}
if [[ ! -x $RUNC_CACHE/bin/runc ]]; then
	log "building runc ${RUNC_VERSION} into ${RUNC_CACHE}/bin"
	mkdir -p "$RUNC_CACHE/bin"
	GOBIN=$RUNC_CACHE/bin CGO_ENABLED=1 go install -tags 'seccomp urfave_cli_no_docs' \
		"github.com/opencontainers/runc@${RUNC_VERSION}"
else
	log "runc ${RUNC_VERSION} present in ${RUNC_CACHE}/bin"
fi

# containernetworking/plugins v1.10.0, which the CNI delegation tests run
# beside Debian's 1.1.1.
"$REPO/contrib/cni-plugins.sh"

# golangci-lint, which `make lint` runs (the Makefile's GOLANGCI_LINT).
GOLANGCI_LINT_VERSION=${GOLANGCI_LINT_VERSION:-v2.15.0}
GOLANGCI_LINT_DIR=/var/cache/hostnet/golangci-lint-${GOLANGCI_LINT_VERSION}
if [[ ! -x $GOLANGCI_LINT_DIR/bin/golangci-lint ]]; then
	log "building golangci-lint ${GOLANGCI_LINT_VERSION} into ${GOLANGCI_LINT_DIR}/bin"
	mkdir -p "$GOLANGCI_LINT_DIR/bin"
	GOBIN=$GOLANGCI_LINT_DIR/bin CGO_ENABLED=0 go install \
		"github.com/golangci/golangci-lint/v2/cmd/golangci-lint@${GOLANGCI_LINT_VERSION}"
else
	log "golangci-lint ${GOLANGCI_LINT_VERSION} present in ${GOLANGCI_LINT_DIR}/bin"
fi

log "building hostnet"
make -C "$REPO" build
log "done: $(containerd --version | head -1)"
