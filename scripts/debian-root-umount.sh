#!/bin/bash
# Unmount whatever scripts/debian-root.sh or make test-debian13 mounted under ROOTDIR (deepest first), so that
# an interrupted run leaves no bind mount behind and the next one starts clean. Quiet when nothing is mounted.
root=$(realpath -m "${1:?root directory}")
[ -d "$root" ] || exit 0
awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
	umount -l "$m" 2>/dev/null || true
done
