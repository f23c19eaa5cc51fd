#!/usr/bin/env bash
# Builds what the Kubernetes test lane (integration/kube, `make test-kube`)
# runs: kube-apiserver and kubelet of Kubernetes $KUBE_VERSION, and etcd
# $ETCD_VERSION, from the Go module proxy, into /var/cache/hostnet.
# Idempotent: a binary already in the cache is not built again.
#
#   KUBE_VERSION   Kubernetes release (v1.37.2)
#   ETCD_VERSION   etcd release (v3.7.0)
#   HOSTNET_CACHE_ROOT  where the caches live (/var/cache/hostnet)
#
# k8s.io/kubernetes's module zip leaves out staging/, which its go.mod
# replaces the k8s.io/* libraries with; the build requires the published
# k8s.io/* modules of the same release (v0.x.y for v1.x.y) instead. etcd is
# built from a three-line main calling etcdmain.Main, as its server binary
# does. kubectl is not needed: the tests speak client-go.
set -euo pipefail

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
CACHE_ROOT=${HOSTNET_CACHE_ROOT:-/var/cache/hostnet}
KUBE_BIN=$CACHE_ROOT/kubernetes-$KUBE_VERSION/bin
ETCD_BIN=$CACHE_ROOT/etcd-$ETCD_VERSION/bin

log() { printf 'build-kubernetes: %s\n' "$*"; }

export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
scratch=$(mktemp -d /tmp/hostnet-kube-build.XXXXXX)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT

if [[ -x $KUBE_BIN/kubelet && -x $KUBE_BIN/kube-apiserver ]]; then
	log "Kubernetes $KUBE_VERSION present in $KUBE_BIN"
else
	log "building kube-apiserver and kubelet $KUBE_VERSION into $KUBE_BIN"
	dir=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
	[[ -d $dir ]] || { echo "build-kubernetes: k8s.io/kubernetes@$KUBE_VERSION not downloaded" >&2; exit 1; }
	src=$scratch/kubernetes
	cp -r "$dir" "$src"
	chmod -R u+w "$src"
	staging_version=v0.${KUBE_VERSION#v1.}
	edits=()
	while read -r mod; do
		edits+=("-dropreplace=$mod" "-require=$mod@$staging_version")
	done < <(sed -n 's#^\t\(k8s\.io/[^ ]*\) => \./staging/.*#\1#p' "$src/go.mod")
	((${#edits[@]})) || { echo "build-kubernetes: no ./staging replaces in go.mod" >&2; exit 1; }
	(cd "$src" && go mod edit "${edits[@]}")
	mkdir -p "$KUBE_BIN"
	(cd "$src" && go build -trimpath -ldflags "-s -w \
		-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
		-X k8s.io/component-base/version.gitMajor=1 \
		-X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBE_VERSION")" \
		-o "$scratch/out/" ./cmd/kubelet ./cmd/kube-apiserver)
	install -m 0755 "$scratch/out/kubelet" "$scratch/out/kube-apiserver" "$KUBE_BIN/"
fi

if [[ -x $ETCD_BIN/etcd ]]; then
	log "etcd $ETCD_VERSION present in $ETCD_BIN"
else
	log "building etcd $ETCD_VERSION into $ETCD_BIN"
	mkdir -p "$scratch/etcd" "$ETCD_BIN"
	cat >"$scratch/etcd/main.go" <<-'EOF'
		package main

		import (
			"os"

			"go.etcd.io/etcd/server/v3/etcdmain"
		)

		func main() { etcdmain.Main(os.Args) }
	EOF
	(cd "$scratch/etcd" && go mod init hostnet.invalid/etcd >/dev/null 2>&1 &&
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION" >/dev/null &&
		go mod tidy >/dev/null &&
		go build -trimpath -ldflags '-s -w' -o "$scratch/out/etcd" .)
	install -m 0755 "$scratch/out/etcd" "$ETCD_BIN/"
fi
log "done: $("$KUBE_BIN/kubelet" --version), etcd $("$ETCD_BIN/etcd" --version | sed -n 's/^etcd Version: //p')"
