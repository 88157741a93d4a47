#!/bin/sh
# The .deb as a user gets it: its control data, its file list, its conffiles and maintainer
# scripts, then the packaged files unpacked into a temporary root, the unit checked by
# systemd-analyze there and the packaged proctor run from there (its --version names this commit).
set -eu
deb=${1:?usage: test-package.sh PROCTOR.deb}
[ -f "$deb" ] || { echo "test-package: no package at $deb" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "test-package: FAIL: $*" >&2; exit 1; }

dpkg-deb -I "$deb" > "$tmp/info"
grep -q '^ Package: proctor$' "$tmp/info" || fail "package name"
grep -q '^ Section: admin$' "$tmp/info" || fail "section"
grep '^ Depends:' "$tmp/info" | grep -q 'libc6' || fail "Depends lacks libc6: $(grep Depends "$tmp/info")"
grep '^ Depends:' "$tmp/info" | grep -q 'libelf1' || fail "Depends lacks libelf1 (libbpf needs it)"

dpkg-deb -c "$deb" > "$tmp/files"
for f in ./usr/bin/proctor ./etc/proctor/proctor.toml ./usr/share/man/man1/proctor.1.gz \
	./usr/share/bash-completion/completions/proctor ./usr/share/zsh/vendor-completions/_proctor \
	./usr/share/fish/vendor_completions.d/proctor.fish; do
	grep -q " $f\$" "$tmp/files" || fail "$f is not in the package"
done
grep -Eq ' \./(usr/)?lib/systemd/system/proctor\.service$' "$tmp/files" || fail "no systemd unit"
grep ' ./usr/bin/proctor$' "$tmp/files" | grep -q '^-rwxr-xr-x 0/0 ' || fail "binary mode/owner (root, 0755)"

dpkg-deb -e "$deb" "$tmp/control"
grep -qx '/etc/proctor/proctor.toml' "$tmp/control/conffiles" || fail "proctor.toml is not a conffile"
grep -q 'deb-systemd-helper' "$tmp/control/postinst" || fail "postinst does not enable the unit"

dpkg-deb -x "$deb" "$tmp/root"
unit=$(find "$tmp/root" -name proctor.service)
grep -q '^ExecStart=/usr/bin/proctor daemon --config /etc/proctor/proctor.toml$' "$unit" || fail "ExecStart"
# Verified against this host's units, its ExecStart pointed at the unpacked binary and the
# unpacked man page on MANPATH; systemd only warns (exit 0) on a bad key, so any output fails.
sed "s|^ExecStart=/usr/bin/proctor|ExecStart=$tmp/root/usr/bin/proctor|" "$unit" > "$tmp/proctor.service"
out=$(MANPATH="$tmp/root/usr/share/man" systemd-analyze verify "$tmp/proctor.service" 2>&1) ||
	fail "systemd-analyze verify: $out"
[ -z "$out" ] || fail "systemd-analyze verify: $out"
version=$("$tmp/root/usr/bin/proctor" --version)
commit=$(git rev-parse --short=12 HEAD)
case "$version" in
"proctor "*" ($commit"*")") ;;
*) fail "--version says '$version', expected commit $commit" ;;
esac
"$tmp/root/usr/bin/proctor" top --help > /dev/null || fail "top is missing"
zcat "$tmp/root/usr/share/man/man1/proctor.1.gz" | grep -q '^\.TH proctor' || fail "man page"
echo "test-package: $deb: OK ($version; $(wc -l < "$tmp/files") entries; $(du -h "$deb" | cut -f1))"
