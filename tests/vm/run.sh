#!/bin/sh
# Run a command as root inside a qemu VM that boots Debian's own kernel with BPF LSM enabled
# (`lsm=...,bpf`), on this machine's root filesystem shared read-only over 9p. Used by
# `make test-lsm`: our build machines refuse every BPF LSM program (shared/KERNEL-NOTES.md), so the
# LSM enforcement layer is exercised here.
#
#   tests/vm/run.sh [--] CMD [ARGS...]     exit status: CMD's, or 2 when the VM itself failed
#
# On a fresh Debian 12 machine it apt-get installs qemu-system-x86, busybox-static and kmod,
# downloads the kernel package `linux-image-amd64` depends on (apt-get download: nothing is
# installed into the host's /boot), and builds a small initramfs whose init loads the 9p modules
# from that package, mounts the host's / read-only, puts tmpfs on /tmp, /run, /var/tmp and /root,
# mounts proc, sys, cgroup2, securityfs, tracefs and bpffs, and runs CMD in the current directory.
# CMD's output goes to the serial console (this script's stdout); its exit status comes back
# through a small writable 9p share. KVM is used when /dev/kvm exists, TCG (slow) otherwise.
#
# Environment: VM_CACHE (default target/vm) holds the kernel and initramfs between runs;
# VM_MEM (default 2048 MB), VM_SMP (default 2), VM_TIMEOUT (default 1200 s),
# VM_LSM (default landlock,lockdown,yama,bpf: the LSMs on the kernel command line).
set -eu

[ "${1:-}" = "--" ] && shift
if [ $# -eq 0 ]; then
	echo "usage: tests/vm/run.sh [--] CMD [ARGS...]" >&2
	exit 2
fi
die() {
	echo "tests/vm/run.sh: $*" >&2
	exit 2
}
[ "$(id -u)" = 0 ] || die "must run as root (apt-get, and the VM runs the command as root)"

cache=$(realpath -m "${VM_CACHE:-target/vm}")
mem=${VM_MEM:-2048}
smp=${VM_SMP:-2}
timeout_s=${VM_TIMEOUT:-1200}
lsm=${VM_LSM:-landlock,lockdown,yama,bpf}

pkgs="qemu-system-x86 busybox-static kmod"
if ! dpkg -s $pkgs >/dev/null 2>&1; then
	apt-get update -qq || die "apt-get update failed"
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $pkgs >/dev/null ||
		die "apt-get install $pkgs failed"
fi

# The kernel: whatever linux-image-amd64 points at (bookworm: 6.1, CONFIG_BPF_LSM=y, BTF).
mkdir -p "$cache"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$kpkg" ]; then
	apt-get update -qq || die "apt-get update failed"
	kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
fi
[ -n "$kpkg" ] || die "cannot resolve linux-image-amd64 to a kernel package"
kver=${kpkg#linux-image-}
kdir="$cache/$kpkg"
if [ ! -f "$kdir/boot/vmlinuz-$kver" ]; then
	rm -rf "$kdir" "$cache/dl"
	mkdir -p "$cache/dl"
	(cd "$cache/dl" && apt-get download "$kpkg" >/dev/null 2>&1) || die "apt-get download $kpkg failed"
	dpkg-deb -x "$cache"/dl/"$kpkg"_*.deb "$kdir" || die "cannot unpack $kpkg"
	rm -rf "$cache/dl"
fi
grep -q '^CONFIG_BPF_LSM=y' "$kdir/boot/config-$kver" || die "$kpkg is built without CONFIG_BPF_LSM"
moddir="$kdir/lib/modules/$kver"

# Modules for a 9p root over virtio, in dependency order (modinfo reads each one's depends).
order=""
add_mod() {
	case " $order " in *" $1 "*) return ;; esac
	path=$(find "$moddir/kernel" -name "$1.ko*" | head -n 1)
	[ -n "$path" ] || die "module $1 not in $kpkg"
	for dep in $(modinfo -F depends "$path" | tr ',' ' '); do
		add_mod "$dep"
	done
	order="$order $1"
}
for m in virtio_pci 9pnet_virtio 9p; do
	add_mod "$m"
done

initrd="$cache/initrd-$kver.cpio.gz"
if [ ! -f "$initrd" ] || [ "$0" -nt "$initrd" ]; then
	work=$(mktemp -d)
	mkdir -p "$work/bin" "$work/mods" "$work/newroot" "$work/proc" "$work/sys" "$work/dev"
	cp /bin/busybox "$work/bin/busybox"
	for m in $order; do
		cp "$(find "$moddir/kernel" -name "$m.ko*" | head -n 1)" "$work/mods/"
	done
	echo "$order" >"$work/mods/order"
	cat >"$work/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in $(cat /mods/order); do
	insmod /mods/$m.ko* || echo "vm-init: insmod $m failed"
done
fail() { echo "vm-init: $*"; poweroff -f; }
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144,cache=loose hostroot /newroot ||
	fail "cannot mount the host root over 9p"
r=/newroot
for d in tmp run var/tmp root; do
	mount -t tmpfs -o mode=1777 tmpfs $r/$d || fail "tmpfs on /$d"
done
mkdir -p $r/tmp/vmshare
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 vmshare $r/tmp/vmshare || fail "cannot mount the result share"
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts devpts $r/dev/pts
mount -t tmpfs tmpfs $r/dev/shm
mount -t cgroup2 cgroup2 $r/sys/fs/cgroup
mount -t securityfs securityfs $r/sys/kernel/security
mount -t tracefs tracefs $r/sys/kernel/tracing
mount -t bpf bpf $r/sys/fs/bpf
ip link set lo up 2>/dev/null || ifconfig lo 127.0.0.1 up
hostname proctor-vm
echo "vm-init: kernel $(uname -r), lsm=$(cat $r/sys/kernel/security/lsm)"
chroot $r /bin/sh /tmp/vmshare/cmd.sh
echo $? >$r/tmp/vmshare/status
sync
poweroff -f
EOF
	chmod +x "$work/init"
	(cd "$work" && find . | cpio -o -H newc 2>/dev/null | gzip -1) >"$initrd.tmp" || die "cannot build the initramfs"
	mv "$initrd.tmp" "$initrd"
	rm -rf "$work"
fi

# The command, in the current directory, with this environment's PATH and the variables tests use.
share=$(mktemp -d "$cache/share.XXXXXX")
trap 'rm -rf "$share"' EXIT
{
	echo "cd '$(pwd)' || exit 2"
	echo "export PATH='$PATH' HOME=/root TMPDIR=/tmp LANG=C.UTF-8"
	[ -n "${RUST_LOG:-}" ] && echo "export RUST_LOG='$RUST_LOG'"
	[ -n "${RUST_BACKTRACE:-}" ] && echo "export RUST_BACKTRACE='$RUST_BACKTRACE'"
	printf 'exec'
	for a in "$@"; do
		printf " '%s'" "$(printf '%s' "$a" | sed "s/'/'\\\\''/g")"
	done
	echo
} >"$share/cmd.sh"

# KVM when it works. Nested KVM can hang the guest right after the boot loader (seen on our
# build machines), so a short boot to the kernel's first console line decides, once per cache.
accel="-accel tcg -cpu max"
if [ -n "${VM_ACCEL:-}" ]; then
	accel=$VM_ACCEL
elif [ -w /dev/kvm ]; then
	if [ ! -f "$cache/kvm.verdict" ]; then
		# In a command substitution, so a qemu that aborts (it does on some nested hosts) leaves
		# no "Aborted" from the shell.
		verdict=$( (timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -m 256 -display none \
			-serial stdio -no-reboot -nodefaults -kernel "$kdir/boot/vmlinuz-$kver" \
			-append "console=ttyS0 panic=-1" </dev/null 2>/dev/null |
			grep -q -m1 'Linux version') 2>/dev/null && echo ok || echo broken)
		echo "$verdict" >"$cache/kvm.verdict"
	fi
	if [ "$(cat "$cache/kvm.verdict")" = ok ]; then
		accel="-enable-kvm -cpu host"
	else
		echo "tests/vm/run.sh: /dev/kvm is present but a KVM guest does not boot here; using TCG (slower)" >&2
	fi
fi
echo "tests/vm/run.sh: booting $kpkg ($accel), lsm=$lsm" >&2
set +e
# shellcheck disable=SC2086 # $accel is two words on purpose
timeout "$timeout_s" qemu-system-x86_64 $accel -m "$mem" -smp "$smp" \
	-no-reboot -nodefaults -display none -serial stdio \
	-kernel "$kdir/boot/vmlinuz-$kver" -initrd "$initrd" \
	-append "console=ttyS0 ${VM_KARGS:-quiet loglevel=3} panic=-1 lsm=$lsm" \
	-virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
	-virtfs local,path="$share",mount_tag=vmshare,security_model=none,multidevs=remap \
	</dev/null
qrc=$?
set -e
[ $qrc -eq 124 ] && die "the VM did not finish within ${timeout_s} s (VM_TIMEOUT)"
[ -f "$share/status" ] || die "the VM stopped without a result (qemu exit $qrc; see the console above)"
exit "$(cat "$share/status")"
