#!/bin/bash
# Run a command inside a root built by scripts/debian-root.sh, with the worktree and the data folder's parent
# (../shared) bind-mounted at their own paths, so that every path the tests and the Makefile compute holds there.
# Usage: scripts/debian-root-run.sh ROOTDIR WORKTREE DATA COMMAND...
set -euo pipefail
root=$(realpath "${1:?root}"); tree=$(realpath "${2:?worktree}"); data=$(realpath -m "${3:?data folder}")
shift 3
here=$(dirname "$(realpath "$0")")
# one user of the root at a time: each unmounts what it finds there first
mkdir -p "$root"
exec 9>"$root.lock"
flock -n 9 || { echo "$root is in use by another make test-debian13" >&2; exit 2; }
"$here/debian-root-umount.sh" "$root"
trap '"$here/debian-root-umount.sh" "$root"' EXIT
trap 'exit 130' INT TERM HUP  # so that the EXIT trap unmounts on these too
bind() {  # bind $1 at the same path inside the root
	mkdir -p "$root$1"
	mount --rbind "$1" "$root$1"
	mount --make-rslave "$root$1"
}
mount -t proc proc "$root/proc"
bind /dev
bind /sys
bind "$tree"
shared=$(dirname "$data")
[ -d "$shared" ] && bind "$shared"
# this machine's name resolves there as here (torchrun's workers reach its agent by host name)
cp /etc/hosts "$root/etc/hosts"
# /tmp is the root's own; the host's environment minus what points into the host's install
chroot "$root" env -i HOME=/root PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin LANG=C.UTF-8 \
	TERM="${TERM:-dumb}" FERS_DATA="$data" "$@"
