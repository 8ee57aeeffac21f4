#!/bin/bash
# Build (once) a Debian root with QGIS and Debian's own PyTorch, for running the suite on a current QGIS release
# without pip torch: make test-debian13 (trixie, QGIS 3.40 LTR) or DEBIAN_SUITE=sid.
# Usage: scripts/debian-root.sh ROOTDIR SUITE "PACKAGES" (make test-debian13: SYSTEM_APT_PACKAGES)
# Idempotent: a root already bootstrapped is reused and only the packages it lacks are installed; an interrupted
# debootstrap starts again from scratch. The mirror is the one apt already uses on this machine (no host named here).
set -euo pipefail
root=$(realpath -m "${1:?root directory}")
suite=${2:-trixie}
packages=${3:?packages to install}
here=$(dirname "$(realpath "$0")")

[ "$(id -u)" = 0 ] || { echo "building a Debian root needs root (debootstrap, chroot)" >&2; exit 2; }
# one user of the root at a time: each unmounts what it finds there first
mkdir -p "$root"
exec 9>"$root.lock"
flock -n 9 || { echo "$root is in use by another make test-debian13" >&2; exit 2; }
"$here/debian-root-umount.sh" "$root"
if awk -v r="$root/" 'index($2, r) == 1 {found=1} END {exit !found}' /proc/mounts; then
	echo "something is still mounted under $root: not touching it" >&2
	exit 2
fi

if [ ! -f "$root/.fers-debootstrap-done" ]; then
	command -v debootstrap >/dev/null || env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap
	# the Debian mirror apt uses here: the first deb822 'URIs:' or one-line 'deb' entry that ends in /debian
	mirror=$(grep -hoE '^(URIs:|deb)[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+/debian/?([[:space:]]|$)' \
		/etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
		| head -1 | awk '{print $NF}') || true
	[ -n "$mirror" ] || { echo "no Debian mirror found in /etc/apt/sources.list*" >&2; exit 2; }
	rm -rf "$root"
	mkdir -p "$root"
	debootstrap --variant=minbase "$suite" "$root" "$mirror"
	touch "$root/.fers-debootstrap-done"
fi

missing=$(for p in $packages; do
	chroot "$root" dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed' || echo "$p"
done)
if [ -n "$missing" ]; then
	mount -t proc proc "$root/proc"
	mount --bind /dev "$root/dev"
	trap '"$here/debian-root-umount.sh" "$root"' EXIT
	trap 'exit 130' INT TERM HUP
	cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
	echo "installing in the Debian $suite root: $(echo $missing)"
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# --no-install-recommends as a minimal install would be: libopenblas0 is in the list on purpose, since without
	# it Debian's numpy and torch run on the reference BLAS (README's native install route says the same)
	chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
	chroot "$root" apt-get clean
fi
echo "Debian $suite root ready: $root ($(du -sh -x "$root" 2>/dev/null | cut -f1))"
