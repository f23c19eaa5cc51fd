#!/usr/bin/env bash
# Builds containerd and ctr of older containerd releases for the
# compatibility test (integration/compat_test.go), each into
# /var/cache/hostnet/containerd-<version>/bin. Idempotent: a release whose
# binaries are there is left alone. Called by contrib/setup.sh.
#
#   contrib/compat-containerd.sh [VERSION...]
#
# Without arguments it builds $HOSTNET_COMPAT_CONTAINERD, by default the
# newest patch release of each line the Go module proxy serves that CI
# tests. Only containerd and ctr are built: the test runs hostnet's shim,
# never these releases' runc shim.
set -euo pipefail

# Keep in step with compatVersions in integration/compat_test.go.
DEFAULT_VERSIONS="v1.7.35 v2.0.14 v2.2.9"
CACHE=${HOSTNET_CACHE_ROOT:-/var/cache/hostnet}

log() { printf 'compat-containerd: %s\n' "$*"; }

if (($# == 0)); then
	read -r -a versions <<<"${HOSTNET_COMPAT_CONTAINERD:-$DEFAULT_VERSIONS}"
else
	versions=("$@")
fi

for v in "${versions[@]}"; do
	dir=$CACHE/containerd-$v
	if [[ -x $dir/bin/containerd && -x $dir/bin/ctr ]]; then
		log "containerd $v present in $dir/bin"
		continue
	fi
	case $v in
	v1.*) module=github.com/containerd/containerd ;;
	v2.*) module=github.com/containerd/containerd/v2 ;;
	*)
		echo "compat-containerd: unsupported version $v" >&2
		exit 1
		;;
	esac
	log "building containerd and ctr $v into $dir/bin"
	started=$SECONDS
	# `go install pkg@version` refuses a module whose go.mod has exclude or
	# replace directives (1.7.x and 2.0/2.1 have them), so build inside the
	# module's own source from the module cache, as its main module.
	# -mod=readonly: 2.0's module ships a vendor/modules.txt without the
	# vendored sources, which would otherwise switch the build to -mod=vendor.
	src=$(go mod download -json "$module@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [[ ! -d $src ]]; then
		echo "compat-containerd: go mod download $module@$v gave no source directory" >&2
		exit 1
	fi
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.containerd-$v.XXXXXX")
	trap 'rm -rf "$tmp"' EXIT
	(cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$tmp/" ./cmd/containerd ./cmd/ctr)
	mkdir -p "$dir"
	rm -rf "$dir/bin"
	mv "$tmp" "$dir/bin"
	chmod 0755 "$dir/bin"
	trap - EXIT
	log "built containerd $v in $((SECONDS - started)) s: $("$dir/bin/containerd" --version)"
done
