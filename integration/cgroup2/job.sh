#!/bin/sh
# Runs inside the cgroup v2 guest (started by guest/hostnet-job from the
# job disk): each line of tests/plan is "GROUP BINARY DIR TIMEOUT [ENV=V...]
# [-- FLAGS...]"; the test binary runs in the package's directory of the
# repository copy, verbose, and its exit status and seconds go to
# out/status, its output to out/GROUP.log ('/' in GROUP as '-').
set -u
cd "$(dirname "$0")"
job=$(pwd)
export PATH=$job/tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOSTNET_BIN_DIR=$job/bin HOSTNET_RUNC=$job/bin/hostnet-runc HOSTNET_TEST_TOOLS=$job/tools
export HOME=/root TMPDIR=/var/tmp
mkdir -p out
# The tests find runc 1.5.2 and the CNI plugins v1.10.0 where setup puts
# them on the host (the root image is a snapshot: nothing is kept).
mkdir -p /var/cache/hostnet/runc-v1.5.2/bin
ln -sf "$job/tools/runc" /var/cache/hostnet/runc-v1.5.2/bin/runc
[ -d "$job/tools/cni-plugins-v1.10.0" ] && ln -sfn "$job/tools/cni-plugins-v1.10.0" /var/cache/hostnet/cni-plugins-v1.10.0
{
	echo "kernel: $(uname -r)"
	echo "cgroup: $(stat -fc %T /sys/fs/cgroup), controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
	echo "own cgroup: $(cat /proc/self/cgroup)"
	echo "init: $(systemctl --version | head -1)"
	echo "booted after: $(cut -d' ' -f1 /proc/uptime) s"
} >out/env
: >out/status
while read -r group binary dir timeout rest; do
	case $group in '' | '#'*) continue ;; esac
	vars=${rest%%--*}
	flags=
	case $rest in *--*) flags=${rest#*--} ;; esac
	logfile=out/$(echo "$group" | tr / -).log
	start=$(date +%s)
	# shellcheck disable=SC2086 # vars and flags are word lists
	(cd "repo/$dir" && env $vars timeout -k 10 "$timeout" "$job/tests/$binary" -test.v -test.count=1 $flags) >"$logfile" 2>&1
	rc=$?
	echo "$group $rc $(($(date +%s) - start))" >>out/status
	sync
done <tests/plan
echo done >>out/status
