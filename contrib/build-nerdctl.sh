#!/usr/bin/env bash
# Builds nerdctl $NERDCTL_VERSION, which the nerdctl test lane
# (integration/nerdctl, `make test-nerdctl`) drives, into
# /var/cache/hostnet/nerdctl-$NERDCTL_VERSION/bin. Idempotent.
#
#   NERDCTL_VERSION  nerdctl release (v2.2.1)
#   NERDCTL_TIGRON   nerdctl's mod/tigron as tagged, a .tar.gz (found in
#                    ../shared/nerdctl/ beside the repository by default)
#   HOSTNET_CACHE_ROOT  where the caches live (/var/cache/hostnet)
#
# The Go module proxy serves nerdctl's source zip, but its go.mod replaces
# github.com/containerd/nerdctl/mod/tigron with ./mod/tigron, a nested
# module the zip leaves out; the archive supplies it. Without the archive
# this exits 0 having built nothing, and the lane skips saying why.
set -euo pipefail

NERDCTL_VERSION=${NERDCTL_VERSION:-v2.2.1}
CACHE_ROOT=${HOSTNET_CACHE_ROOT:-/var/cache/hostnet}
BIN=$CACHE_ROOT/nerdctl-$NERDCTL_VERSION/bin
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

log() { printf 'build-nerdctl: %s\n' "$*"; }

if [[ -x $BIN/nerdctl ]]; then
	log "nerdctl $NERDCTL_VERSION present in $BIN"
	exit 0
fi
if [[ -z ${NERDCTL_TIGRON:-} ]]; then
	# Beside the checkout; for a git worktree, beside the main checkout.
	for top in "$REPO" "$(dirname "$(git -C "$REPO" rev-parse --path-format=absolute --git-common-dir 2>/dev/null || echo "$REPO/.git")")"; do
		candidate=$top/../shared/nerdctl/tigron-$NERDCTL_VERSION.tar.gz
		if [[ -f $candidate ]]; then
			NERDCTL_TIGRON=$candidate
			break
		fi
	done
fi
if [[ ! -f ${NERDCTL_TIGRON:-} ]]; then
	log "not building nerdctl: tigron-$NERDCTL_VERSION.tar.gz (nerdctl's mod/tigron) not found beside the repository; set NERDCTL_TIGRON"
	exit 0
fi

export PATH=/usr/local/go/bin:$PATH
export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local GOWORK=off
log "building nerdctl $NERDCTL_VERSION into $BIN"
scratch=$(mktemp -d /tmp/hostnet-nerdctl-build.XXXXXX)
trap 'chmod -R u+w "$scratch" 2>/dev/null; rm -rf "$scratch"' EXIT
dir=$(go mod download -json "github.com/containerd/nerdctl/v2@$NERDCTL_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
[[ -d $dir ]] || { echo "build-nerdctl: nerdctl $NERDCTL_VERSION not downloaded" >&2; exit 1; }
cp -r "$dir" "$scratch/nerdctl"
chmod -R u+w "$scratch/nerdctl"
tar -xzf "$NERDCTL_TIGRON" -C "$scratch/nerdctl"
[[ -f $scratch/nerdctl/mod/tigron/go.mod ]] || { echo "build-nerdctl: $NERDCTL_TIGRON has no mod/tigron/go.mod" >&2; exit 1; }
(cd "$scratch/nerdctl" && go build -trimpath \
	-ldflags "-s -w -X github.com/containerd/nerdctl/v2/pkg/version.Version=$NERDCTL_VERSION" \
	-o "$scratch/nerdctl.bin" ./cmd/nerdctl)
mkdir -p "$BIN"
install -m 0755 "$scratch/nerdctl.bin" "$BIN/nerdctl"
log "done: $("$BIN/nerdctl" --version)"
