#!/usr/bin/env bash
# Builds containernetworking/plugins from the Go module proxy into
# /var/cache/hostnet/cni-plugins-<version>, for the CNI delegation tests
# (Debian's containernetworking-plugins is 1.1.1). Idempotent: a complete
# build is kept and not redone.
#
#   CNI_PLUGINS_VERSION   the release (v1.10.0)
set -euo pipefail

CNI_PLUGINS_VERSION=${CNI_PLUGINS_VERSION:-v1.10.0}
dir=/var/cache/hostnet/cni-plugins-${CNI_PLUGINS_VERSION}
plugins=(main/bridge main/loopback ipam/host-local meta/portmap meta/firewall)

complete=1
for p in "${plugins[@]}"; do
	[[ -x $dir/${p#*/} ]] || complete=0
done
if ((complete)); then
	echo "cni-plugins: ${CNI_PLUGINS_VERSION} present in $dir"
	exit 0
fi
echo "cni-plugins: building ${CNI_PLUGINS_VERSION} into $dir"
mkdir -p "$dir"
pkgs=()
for p in "${plugins[@]}"; do
	pkgs+=("github.com/containernetworking/plugins/plugins/$p@${CNI_PLUGINS_VERSION}")
done
GOBIN=$dir CGO_ENABLED=0 go install \
	-ldflags "-X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=${CNI_PLUGINS_VERSION}" \
	"${pkgs[@]}"
