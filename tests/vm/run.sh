#!/usr/bin/env bash
# Run a command as root inside a qemu VM that boots Debian's own kernel with BPF LSM enabled
# (`lsm=...,bpf`). Used by `make test-lsm` (part of `make test`): our build machines refuse every
# BPF LSM program, so the LSM enforcement layer is exercised here.
#
#   tests/vm/run.sh [--] CMD [ARGS...]     exit status: CMD's, or 2 when the VM itself failed
#
# What it does, each step checked (a failed step stops the script and names itself):
# - apt-get installs what it uses (qemu-system-x86, busybox-static, kmod, cpio, gzip);
# - downloads the kernel package `linux-image-amd64` depends on (apt-get download: nothing is
#   installed into the host's /boot) and unpacks it under the cache;
# - builds a small initramfs whose init loads the 9p modules from that package, mounts the host's
#   / read-only (for the programs and libraries), puts tmpfs on /tmp, /run, /var/tmp and /root,
#   mounts the directory to share (the checkout) read-only at its own path, mounts proc, sys,
#   cgroup2, securityfs, tracefs and bpffs, and runs CMD in that directory;
# - boots it. CMD's output goes to the serial console (this script's stdout); its exit status
#   comes back through a small writable 9p share. KVM when /dev/kvm works, TCG otherwise.
#
# The checkout is shared explicitly (VM_SHARE, default: the current directory), so it may live
# anywhere, /tmp included: the VM's view of the host root has tmpfs over /tmp, /run and /root.
#
# Environment: VM_CACHE (default target/vm) holds the kernel and initramfs between runs;
# VM_SHARE (default .) the directory shared into the VM, where CMD runs; VM_MEM (default 2048 MB),
# VM_SMP (default 2), VM_TIMEOUT (default 1200 s), VM_LSM (default landlock,lockdown,yama,bpf).
set -euo pipefail

[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
	echo "usage: tests/vm/run.sh [--] CMD [ARGS...]" >&2
	exit 2
fi
die() {
	echo "tests/vm/run.sh: $*" >&2
	exit 2
}
step() { echo "tests/vm/run.sh: $*" >&2; }
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, and the VM runs the command as root)"

cache=$(realpath -m "${VM_CACHE:-target/vm}")
share_dir=$(realpath -e "${VM_SHARE:-.}") || die "VM_SHARE ${VM_SHARE:-.} does not exist"
mem=${VM_MEM:-2048}
smp=${VM_SMP:-2}
timeout_s=${VM_TIMEOUT:-1200}
lsm=${VM_LSM:-landlock,lockdown,yama,bpf}
case "$share_dir" in
*"'"* | *" "* | *\"*) die "the shared directory's path must not contain quotes or spaces: $share_dir" ;;
esac

pkgs="qemu-system-x86 busybox-static kmod cpio gzip"
# `make test` runs this beside the kernel tier, one of whose tests runs apt-get itself: both
# take this lock around apt (and wait for dpkg's), so neither finds dpkg locked and fails.
apt_lock=/tmp/proctor-tests-apt.lock
# shellcheck disable=SC2086 # a list of package names
if ! dpkg -s $pkgs >/dev/null 2>&1; then
	step "installing $pkgs"
	flock "$apt_lock" apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive flock "$apt_lock" apt-get install -y -qq \
		-o DPkg::Lock::Timeout=600 --no-install-recommends $pkgs ||
		die "apt-get install $pkgs failed"
fi
for tool in qemu-system-x86_64 busybox modinfo cpio gzip dpkg-deb; do
	command -v "$tool" >/dev/null || die "$tool is not installed"
done
[ -x /bin/busybox ] || die "/bin/busybox (busybox-static) is missing"

# The kernel: whatever linux-image-amd64 points at (bookworm: 6.1, CONFIG_BPF_LSM=y, BTF).
mkdir -p "$cache"
resolve_kernel() {
	apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }'
}
kpkg=$(resolve_kernel || true)
if [ -z "$kpkg" ]; then
	flock "$apt_lock" apt-get update -qq || die "apt-get update failed"
	kpkg=$(resolve_kernel) || die "apt-cache depends linux-image-amd64 failed"
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
kver=${kpkg#linux-image-}
kdir="$cache/$kpkg"
if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
	step "downloading $kpkg"
	rm -rf "$kdir" "$cache/dl"
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download -q "$kpkg") || die "apt-get download $kpkg failed"
	dpkg-deb -x "$cache"/dl/"$kpkg"_*.deb "$kdir" || die "cannot unpack $kpkg"
	rm -rf "$cache/dl"
fi
[ -f "$kdir/boot/vmlinuz-$kver" ] || die "$kpkg has no /boot/vmlinuz-$kver"
grep -q '^CONFIG_BPF_LSM=y' "$kdir/boot/config-$kver" || die "$kpkg is built without CONFIG_BPF_LSM"
moddir="$kdir/lib/modules/$kver"

# Modules for 9p over virtio, in dependency order (modinfo reads each one's depends).
order=""
mod_path() {
	local p
	p=$(find "$moddir/kernel" -name "$1.ko*" -print -quit)
	[ -n "$p" ] || die "module $1 not in $kpkg"
	echo "$p"
}
add_mod() {
	case " $order " in *" $1 "*) return ;; esac
	local path deps dep
	path=$(mod_path "$1")
	deps=$(modinfo -F depends "$path") || die "modinfo $path failed"
	for dep in ${deps//,/ }; do
		add_mod "$dep"
	done
	order="$order $1"
}
for m in virtio_pci 9pnet_virtio 9p; do
	add_mod "$m"
done

initrd="$cache/initrd-$kver.cpio.gz"
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
	step "building the initramfs"
	work=$(mktemp -d)
	mkdir -p "$work/bin" "$work/mods" "$work/newroot" "$work/proc" "$work/sys" "$work/dev"
	cp /bin/busybox "$work/bin/busybox"
	for m in $order; do
		cp "$(mod_path "$m")" "$work/mods/"
	done
	echo "$order" >"$work/mods/order"
	cat >"$work/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "vm-init: $*"; poweroff -f; }
for m in $(cat /mods/order); do
	insmod /mods/$m.ko* || fail "insmod $m failed"
done
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /newroot ||
	fail "cannot mount the host root over 9p"
r=/newroot
for d in tmp run var/tmp root; do
	mount -t tmpfs -o mode=1777 tmpfs $r/$d || fail "tmpfs on /$d"
done
mkdir -p $r/tmp/vmshare
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmshare $r/tmp/vmshare || fail "cannot mount the result share"
# The checkout, at the path it has on the host (it may be under the tmpfs mounted above).
checkout=$(cat $r/tmp/vmshare/checkout) || fail "no checkout path in the result share"
mkdir -p "$r$checkout" || fail "cannot create $checkout in the VM"
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose checkout "$r$checkout" ||
	fail "cannot mount the checkout at $checkout"
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs tmpfs $r/dev/shm
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup || fail "cgroup2"
mount -t securityfs securityfs $r/sys/kernel/security || fail "securityfs"
mount -t tracefs tracefs $r/sys/kernel/tracing || fail "tracefs"
mount -t bpf bpf $r/sys/fs/bpf || fail "bpffs"
ip link set lo up || ifconfig lo 127.0.0.1 up || fail "cannot bring lo up"
hostname proctor-vm
echo "vm-init: kernel $(uname -r), lsm=$(cat $r/sys/kernel/security/lsm)"
chroot $r /bin/sh /tmp/vmshare/cmd.sh
echo $? >$r/tmp/vmshare/status
sync
poweroff -f
EOF
	chmod +x "$work/init"
	(cd "$work" && find . | cpio --quiet -o -H newc | gzip -1) >"$initrd.tmp" ||
		die "cannot build the initramfs (cpio or gzip failed)"
	# busybox alone is over 1 MB: anything much smaller is a broken archive.
	size=$(stat -c %s "$initrd.tmp")
	[ "$size" -gt 500000 ] || die "the initramfs is only $size bytes: cpio or gzip failed"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$work"
fi

# The command, in the shared directory, with this environment's PATH and the variables tests use.
share=$(mktemp -d "$cache/share.XXXXXX")
trap 'rm -rf "$share"' EXIT
echo "$share_dir" >"$share/checkout"
{
	echo "cd '$share_dir' || exit 2"
	echo "export PATH='$PATH' HOME=/root TMPDIR=/tmp LANG=C.UTF-8"
	if [ -n "${RUST_LOG:-}" ]; then echo "export RUST_LOG='$RUST_LOG'"; fi
	if [ -n "${RUST_BACKTRACE:-}" ]; then echo "export RUST_BACKTRACE='$RUST_BACKTRACE'"; fi
	printf 'exec'
	for a in "$@"; do
		printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
	done
	echo
} >"$share/cmd.sh"

# KVM when it works. Nested KVM can hang the guest right after the boot loader (seen on our
# build machines), so a short boot to the kernel's first console line decides, once per cache;
# the probe's console is kept in kvm-probe.log.
accel="-accel tcg -cpu max"
if [ -n "${VM_ACCEL:-}" ]; then
	accel=$VM_ACCEL
elif [ -w /dev/kvm ]; then
	if [ ! -f "$cache/kvm.verdict" ]; then
		# The probe ends by timeout or by the kernel's panic (no root fs): its exit status says
		# nothing, the console does.
		timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -display none \
			-serial file:"$cache/kvm-probe.log" -no-reboot -nodefaults \
			-kernel "$kdir/boot/vmlinuz-$kver" -append "console=ttyS0 panic=-1" \
			</dev/null >"$cache/kvm-probe.qemu.log" 2>&1 || true
		verdict=broken
		grep -q 'Linux version' "$cache/kvm-probe.log" && verdict=ok
		echo "$verdict" >"$cache/kvm.verdict"
	fi
	if [ "$(cat "$cache/kvm.verdict")" = ok ]; then
		accel="-enable-kvm -cpu host"
	else
		step "/dev/kvm is present but a KVM guest does not boot here ($cache/kvm-probe.log); using TCG (slower)"
	fi
fi
step "booting $kpkg ($accel), lsm=$lsm, sharing $share_dir"
set +e
# shellcheck disable=SC2086 # $accel is two words on purpose
timeout "$timeout_s" qemu-system-x86_64 $accel -m "$mem" -smp "$smp" \
	-no-reboot -nodefaults -display none -serial stdio \
	-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" \
	-append "console=ttyS0 ${VM_KARGS:-quiet loglevel=3} panic=-1 softlockup_panic=1 softlockup_all_cpu_backtrace=1 lsm=$lsm" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$share_dir",mount_tag=checkout,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$share",mount_tag=vmshare,security_model=none,multidevs=remap \
	</dev/null
qrc=$?
set -e
[ $qrc -eq 124 ] && die "the VM did not finish within ${timeout_s} s (VM_TIMEOUT)"
[ -f "$share/status" ] || die "the VM stopped without a result (qemu exit $qrc; see the console above)"
exit "$(cat "$share/status")"
