#!/usr/bin/env bash
# The cgroup v2 lane (`make test-cgroup2`): runs hostnet's unit tests,
# integration/ociruntime and the containerd integration tests inside a
# Debian guest booted under QEMU with systemd as pid 1 and only the unified
# cgroup v2 hierarchy, and fails when any of them fails.
#
# The host builds everything (the guest has no Go and runs under TCG,
# several times slower than the host), carries it in on an ext4 image made
# with mkfs.ext4 -d, boots the guest from the cached root image (opened
# with snapshot=on, so it never changes) and reads the results back with
# debugfs: no loop device, no mount on the host. QEMU is stopped by pid when
# the guest does not power itself off in time, and on any exit.
#
#   HOSTNET_VM_TIMEOUT  seconds the guest may run (default 2100: 1000-1320 s
#                       measured on a fresh machine, loaded to idle)
#   HOSTNET_VM_TESTS    which groups run: all (default), or a
#                       space-separated list of unit, ociruntime,
#                       ociruntime-runc, integration
#   HOSTNET_VM_RUN      a -test.run pattern for the ociruntime and
#                       integration groups (default: each group's own)
#   HOSTNET_VM_KEEP     keep the work directory (printed) for debugging
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
timeout=${HOSTNET_VM_TIMEOUT:-2100}
groups=${HOSTNET_VM_TESTS:-all}
runc152=${RUNC_152:-/var/cache/hostnet/runc-v1.5.2/bin/runc}
export PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

log() { printf 'cgroup2: %s\n' "$*"; }
now() { date +%s; }
want() { [[ $groups == all || " $groups " == *" $1 "* ]]; }

if [[ $(id -u) -ne 0 ]]; then
	echo "cgroup2: run as root (sudo make test-cgroup2)" >&2
	exit 1
fi
for tool in qemu-system-x86_64 mmdebstrap mkfs.ext4 debugfs; do
	command -v "$tool" >/dev/null || { echo "cgroup2: $tool is missing: run contrib/setup.sh" >&2; exit 1; }
done

work=$(mktemp -d /tmp/hostnet-cgroup2.XXXXXX)
qemu_pid=
stop_qemu() {
	if [[ -n $qemu_pid ]] && kill -0 "$qemu_pid" 2>/dev/null; then
		log "stopping QEMU (pid $qemu_pid)"
		kill "$qemu_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$qemu_pid" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$qemu_pid" 2>/dev/null || true
		wait "$qemu_pid" 2>/dev/null || true
	fi
}
cleanup() {
	stop_qemu
	if [[ -n ${HOSTNET_VM_KEEP:-} ]]; then
		log "work directory kept: $work"
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$(now)
image=$("$here/image.sh")
t_image=$(($(now) - t0))
log "image $image ($t_image s)"

# The job: binaries, test programs, a copy of the repository (test data,
# go.mod for the harness's repository root), and the plan job.sh follows.
t1=$(now)
job=$work/job
mkdir -p "$job/bin" "$job/tools" "$job/tests" "$job/repo" "$job/out"
make -s -C "$repo" build BINDIR="$job/bin"
(cd "$repo" && git ls-files -co --exclude-standard -z | grep -zv '^docs/' | xargs -0 tar -cf - | tar -xf - -C "$job/repo")
install -m 0755 "$here/job.sh" "$job/job.sh"
for b in containerd ctr containerd-shim-runc-v2; do
	install -m 0755 "$(readlink -f "$(command -v "$b")")" "$job/tools/$b"
done
install -m 0755 "$runc152" "$job/tools/runc"
# The CNI plugins v1.10.0 the CNI delegation test runs beside Debian's.
cni110=/var/cache/hostnet/cni-plugins-v1.10.0
[[ -d $cni110 ]] && cp -a "$cni110" "$job/tools/cni-plugins-v1.10.0"
(cd "$repo" && CGO_ENABLED=0 go build -o "$job/tools/pause" ./integration/testdata/pause &&
	CGO_ENABLED=0 go build -o "$job/tools/logger" ./integration/testdata/logger)

plan=$job/tests/plan
: >"$plan"
runflag() { if [[ -n ${HOSTNET_VM_RUN:-} ]]; then echo "-test.run $HOSTNET_VM_RUN"; else echo "$1"; fi; }
if want unit; then
	mapfile -t pkgs < <(cd "$repo" && go list -f '{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}' ./spec/... ./shim/... ./runtime/... ./integration/internal/...)
	# A directory of their own: a unit package may share its name with a
	# test group's binary (shim/ociruntime and integration/ociruntime).
	mkdir -p "$job/tests/unit"
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$job/tests/unit/" "${pkgs[@]}")
	for dir in "${pkgs[@]}"; do
		rel=${dir#"$repo"/}
		echo "unit:$rel unit/$(basename "$dir").test $rel 600" >>"$plan"
	done
fi
if want ociruntime || want ociruntime-runc; then
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$job/tests/ociruntime.test" ./integration/ociruntime)
fi
if want ociruntime; then
	echo "ociruntime ociruntime.test integration/ociruntime 1200 -- -test.timeout 19m $(runflag '')" >>"$plan"
fi
if want ociruntime-runc; then
	# The cgroup v2 tests again, with runc 1.5.2 as the runtime: what
	# hostnet-runc must match.
	echo "ociruntime-runc ociruntime.test integration/ociruntime 600 HOSTNET_RUNC=/job/tools/runc -- $(runflag '-test.run TestCgroupV2|TestRelativeCgroupPath')" >>"$plan"
fi
if want integration; then
	(cd "$repo" && CGO_ENABLED=0 go test -c -o "$job/tests/integration.test" ./integration)
	# Not here, to keep the lane short under TCG: the two slowest tests
	# (3 and 0.7 minutes in the guest), which test containerd restarts and
	# bridge-mode addressing, not cgroups; make test runs them.
	echo "integration integration.test integration 1800 -- -test.timeout 29m -test.skip TestRestartContainerd|TestBridgeConcurrentAddresses $(runflag '')" >>"$plan"
fi
size=$(($(du -sm "$job" | cut -f1) + 256))
mkfs.ext4 -q -F -L job -d "$job" "$work/job.img" "${size}M" >/dev/null
t_job=$(($(now) - t1))
log "job built ($t_job s, ${size} MiB): $(wc -l <"$plan") test groups"

# Boot. Two vCPUs under TCG (no usable KVM here), the root image read-only
# through QEMU's snapshot, the job disk second, the console to a file.
t2=$(now)
console=$work/console.log
qemu-system-x86_64 -machine q35 -accel tcg -cpu max -smp 2 -m 4096 \
	-nodefaults -display none -no-reboot \
	-kernel "$image/vmlinuz" -initrd "$image/initrd" \
	-append "root=/dev/vda rw console=ttyS0 systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all panic=-1 modprobe.blacklist=kvm_amd,kvm_intel" \
	-drive "file=$image/root.img,format=raw,if=virtio,snapshot=on" \
	-drive "file=$work/job.img,format=raw,if=virtio" \
	-serial "file:$console" &
qemu_pid=$!
log "QEMU started (pid $qemu_pid), waiting up to $timeout s"
timed_out=0
while kill -0 "$qemu_pid" 2>/dev/null; do
	if (($(now) - t2 > timeout)); then
		timed_out=1
		log "the guest did not power off within $timeout s"
		break
	fi
	sleep 2
done
if ((timed_out)); then
	stop_qemu
fi
wait "$qemu_pid" 2>/dev/null || true
qemu_pid=
t_guest=$(($(now) - t2))

out=$work/out
debugfs -R "rdump /out $work" "$work/job.img" >/dev/null 2>&1 || true
echo "--- cgroup2 guest"
cat "$out/env" 2>/dev/null || true
fail=0
declare -A ran=()
while read -r group rc secs; do
	[[ $group == done ]] && continue
	ran[$group]=1
	logfile=$out/${group//\//-}.log
	echo "--- cgroup2 $group (exit $rc, $secs s)"
	# Each test's result, and all the output of a group that failed.
	if [[ $rc -ne 0 ]]; then
		cat "$logfile"
		fail=1
	else
		grep -E '^\s*--- (PASS|FAIL|SKIP)|^(ok|PASS|FAIL)' "$logfile" || true
	fi
done <"$out/status" 2>/dev/null || true
while read -r group _; do
	[[ $group == '' || $group == '#'* ]] && continue
	if [[ -z ${ran[$group]:-} ]]; then
		echo "--- cgroup2 $group: did not run"
		fail=1
	fi
done <"$plan"
if ((fail)) || ((timed_out)) || ! grep -qx done "$out/status" 2>/dev/null; then
	echo "--- cgroup2 console (last 60 lines)"
	tail -n 60 "$console" || true
	fail=1
fi
boot=$(sed -n 's/^booted after: //p' "$out/env" 2>/dev/null || true)
log "timings: image $t_image s, job build $t_job s, guest $t_guest s (the job started ${boot:-?} after boot)"
if ((fail)); then
	log "FAILED"
	exit 1
fi
log "all test groups passed"
