#!/usr/bin/env bash
# Builds the cgroup v2 guest: a Debian bookworm root filesystem image made
# from apt alone (mmdebstrap), with systemd as its init and a unit that runs
# the test job from a second disk, plus the kernel and initrd to boot it.
# The image is cached under $HOSTNET_VM_CACHE, keyed by a hash of this
# recipe, so editing the recipe builds a new one. Prints the image's
# directory. Needs root, mmdebstrap and e2fsprogs (contrib/setup.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${HOSTNET_VM_CACHE:-/var/cache/hostnet/cgroup2-vm}

# What the guest needs: systemd and D-Bus (the systemd cgroup driver), the
# kernel, the tools the tests call (busybox for the test images, ip, nft,
# CNI plugins for the CRI test) and libseccomp for runc.
packages=systemd,systemd-sysv,dbus,udev,kmod,procps,linux-image-cloud-amd64
packages+=,busybox-static,iproute2,nftables,iptables,containernetworking-plugins,libseccomp2

key=$( { cat "$here/image.sh" "$here"/guest/*; echo "$packages"; } | sha256sum | cut -c1-16)
dir=$cache/bookworm-$key
if [[ -e $dir/ready ]]; then
	echo "$dir"
	exit 0
fi

log() { printf 'cgroup2 image: %s\n' "$*" >&2; }
mkdir -p "$cache"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The host's own Debian sources (its mirror, bookworm and its updates),
# else Debian's default mirror.
sources=http://deb.debian.org/debian
if [[ -e /etc/apt/sources.list.d/debian.sources ]]; then
	sources=/etc/apt/sources.list.d/debian.sources
fi
log "building into $dir (mmdebstrap, bookworm)"
# A mount namespace of its own: mmdebstrap's mounts of /proc, /sys and /dev
# in the new root never show on the host, and go when it ends.
unshare --mount --propagation private \
	mmdebstrap --quiet --mode=root --variant=minbase --include="$packages" \
	bookworm "$work/root" "$sources" >&2

root=$work/root
install -m 0644 "$here/guest/hostnet-job.service" "$root/etc/systemd/system/"
install -m 0755 "$here/guest/hostnet-job" "$root/usr/local/sbin/"
ln -sf /etc/systemd/system/hostnet-job.service "$root/etc/systemd/system/multi-user.target.wants/"
# No login prompts on the console, nothing started that the job does not need.
for unit in getty@tty1.service serial-getty@ttyS0.service e2scrub_reap.service \
	systemd-timesyncd.service apt-daily.timer apt-daily-upgrade.timer; do
	ln -sf /dev/null "$root/etc/systemd/system/$unit"
done
echo hostnet-cgroup2 >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 hostnet-cgroup2\n::1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
mkdir -p "$root/job"

mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd"
# A sparse 6 GiB root: the tests' containerd roots and images live in it
# (writes go to QEMU's snapshot, never to the image).
mkfs.ext4 -q -F -L root -d "$root" "$work/out/root.img" 6G >&2
touch "$work/out/ready"
rm -rf "$dir"
mv "$work/out" "$dir"
# Older images of other recipes are not needed any more.
for old in "$cache"/bookworm-*; do
	if [[ $old != "$dir" ]]; then rm -rf "$old"; fi
done
log "done"
echo "$dir"
