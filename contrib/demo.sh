#!/usr/bin/env bash
# hostnet in one command: installs what is missing, builds hostnet, starts a
# private containerd with io.containerd.hostnet.v1 registered, imports a
# busybox image built from the host's busybox-static, and runs a container
# that lists the host's network interfaces. Everything it starts or creates
# is removed on exit, also on failure or Ctrl-C. Needs root.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
IMAGE=docker.io/hostnet/busybox:test
NS=hostnet-demo-$$
RUNTIME_ROOT=/run/containerd/hostnet-runc

"$REPO/contrib/setup.sh"
export PATH=$REPO/bin:/usr/local/go/bin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

dir=$(mktemp -d /tmp/hostnet-demo-XXXXXX)
sock=$dir/containerd.sock
daemon_pid=

ctr() { command ctr --address "$sock" --namespace "$NS" "$@"; }

cleanup() {
	set +e
	if [[ -n $daemon_pid ]]; then
		ctr tasks delete --force demo >/dev/null 2>&1
		ctr containers delete demo >/dev/null 2>&1
		kill -TERM "$daemon_pid" 2>/dev/null
		wait "$daemon_pid" 2>/dev/null
	fi
	# Unmount whatever is still mounted below the demo's directory, deepest first.
	awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m"; done
	for cg in /sys/fs/cgroup/*/"$NS" /sys/fs/cgroup/"$NS"; do
		[[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null
	done
	# The runtime's state of the namespace: <root>/<namespace>@<instance>.
	rm -rf "${RUNTIME_ROOT:?}/$NS"@*
	if awk -v d="$dir/" 'index($5, d) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
		echo "demo: mounts left below $dir; not removing it" >&2
	else
		rm -rf "$dir"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cat >"$dir/config.toml" <<TOML
version = 3
root = '$dir/root'
state = '$dir/state'
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '$sock'

[ttrpc]
  address = '$sock.ttrpc'

[debug]
  address = '$dir/debug.sock'

[plugins.'io.containerd.internal.v1.opt']
  path = '$dir/opt'

[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.hostnet]
  runtime_type = 'io.containerd.hostnet.v1'
TOML

echo "demo: starting containerd in $dir (log: $dir/containerd.log)"
containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
	ctr version >/dev/null 2>&1 && break
	kill -0 "$daemon_pid" 2>/dev/null || { tail -20 "$dir/containerd.log"; exit 1; }
	sleep 0.1
done
ctr version >/dev/null

echo "demo: building and importing $IMAGE"
(cd "$REPO" && go run ./integration/cmd/mkimage -o "$dir/busybox.tar")
ctr images import "$dir/busybox.tar"

echo
echo "demo: the host's interfaces (ip -o link):"
ip -o link | awk '{ print "  " $2 }'
echo
echo "demo: ctr run --rm --runtime io.containerd.hostnet.v1 $IMAGE demo ip -o link"
ctr run --rm --fifo-dir "$dir/fifo" --runtime io.containerd.hostnet.v1 "$IMAGE" demo ip -o link 2> >(grep -v DEPRECATION >&2)
echo
echo "demo: the container saw the host's interfaces: it ran in the host's network namespace."
