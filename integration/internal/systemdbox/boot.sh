#!/bin/sh
# Boots systemd as the init of a throwaway sandbox, for tests of the systemd
# cgroup driver on hosts whose own init is not systemd.
#
#   boot.sh outer DIR CGROUP BIND...  join CGROUP in every hierarchy, then
#                                     re-run as "inner" in new namespaces
#   boot.sh inner DIR BIND...         build the sandbox root and exec systemd
#
# The sandbox has its own mount, pid, cgroup and uts namespaces; its root is
# a tmpfs with the host's /usr read-only and an /etc of a few files, so no
# host unit runs in it; the BIND directories appear at the same paths.
set -eu
mode=$1 dir=$2
shift 2
if [ "$mode" = outer ]; then
	cg=$1
	shift
	for procs in /sys/fs/cgroup/*/"$cg"/cgroup.procs /sys/fs/cgroup/"$cg"/cgroup.procs; do
		if [ -e "$procs" ]; then echo $$ >"$procs"; fi
	done
	exec unshare --kill-child --mount --pid --fork --cgroup --uts --propagation private \
		env -i container=hostnet-test PATH=/usr/sbin:/usr/bin "$0" inner "$dir" "$@"
fi

root=$dir/root
mkdir -p "$root"
mount -t tmpfs -o mode=755 sandbox "$root"
cd "$root"
mkdir -p usr etc proc sys dev run tmp var/tmp root
ln -s usr/bin bin
ln -s usr/sbin sbin
ln -s usr/lib lib
if [ -e /usr/lib64 ]; then ln -s usr/lib64 lib64; fi
mount --bind /usr usr
mount -o remount,bind,ro usr
mount -t proc proc proc
mount --rbind /sys sys
mount --rbind /dev dev
mount -t tmpfs tmpfs run
mount -t tmpfs tmpfs tmp

# The cgroup hierarchies the host has, mounted afresh: inside the new
# cgroup namespace they show the sandbox's cgroup as their root.
mount -t tmpfs -o mode=755 cgroup sys/fs/cgroup
if [ "$(stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then
	# Over the tmpfs: without it, sys/fs/cgroup is the host's cgroup2
	# mount (from the rbind of /sys), and mounting it again there fails.
	mount -t cgroup2 cgroup2 sys/fs/cgroup
else
	# Read the list first: the mounts below would show up in it.
	hierarchies=$(awk '$2 ~ "^/sys/fs/cgroup/[^/]+$" && ($3 == "cgroup" || $3 == "cgroup2") { print $3 ":" substr($2, 16) }' /proc/self/mounts)
	for h in $hierarchies; do
		name=${h#*:}
		mkdir -p "sys/fs/cgroup/$name"
		case $h in
		cgroup2:*) mount -t cgroup2 cgroup2 "sys/fs/cgroup/$name" ;;
		cgroup:systemd) mount -t cgroup -o none,name=systemd cgroup "sys/fs/cgroup/$name" ;;
		*) mount -t cgroup -o "$name" cgroup "sys/fs/cgroup/$name" ;;
		esac
	done
fi

for f in passwd group hosts resolv.conf; do
	if [ -e "/etc/$f" ]; then cp "/etc/$f" etc/; fi
done
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >etc/machine-id
mkdir -p etc/systemd/system
printf '[Unit]\nDescription=hostnet test sandbox\n' >etc/systemd/system/sandbox.target
for b in "$@"; do
	mkdir -p "$root$b"
	mount --bind "$b" "$root$b"
done
exec chroot "$root" /usr/lib/systemd/systemd --unit=sandbox.target --log-target=console
