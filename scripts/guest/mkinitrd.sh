#!/usr/bin/env bash
# Builds a busybox initramfs: busybox-static with its applets, INIT as /init,
# and MODULES of the kernel VER unpacked at ROOT with all their dependencies
# (decompressed, depmod'ed), packed as cpio newc + gzip into OUT.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: mkinitrd.sh ROOT VER OUT INIT [MODULE...]" >&2; exit 2; }
ROOT=$1 VER=$2 OUT=$3 INIT=$4
shift 4

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work"/{bin,sbin,proc,sys,dev,host,tmp,etc,lib/modules/"$VER"}
cp /bin/busybox "$work/bin/busybox"
# `busybox --list` names busybox itself: linking it over the binary gives ELOOP at boot.
for applet in $(/bin/busybox --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$work/bin/$applet"
done
install -m 0755 "$INIT" "$work/init"

mods=$ROOT/lib/modules/$VER
for m in "$@"; do
  # Modules the kernel does not have (ublk_drv on 6.1) are left out; the guest reports them missing.
  modprobe -d "$ROOT" -S "$VER" --show-depends "$m" 2>/dev/null || true
done | sed -n 's/^insmod \([^ ]*\).*/\1/p' | sort -u | while read -r ko; do
  rel=${ko#"$mods"/}
  mkdir -p "$work/lib/modules/$VER/$(dirname "$rel")"
  case $ko in
    *.xz) xz -dc "$ko" >"$work/lib/modules/$VER/${rel%.xz}" ;;
    *.zst) zstd -qdc "$ko" >"$work/lib/modules/$VER/${rel%.zst}" ;;
    *) cp "$ko" "$work/lib/modules/$VER/$rel" ;;
  esac
done
cp "$mods"/modules.builtin* "$work/lib/modules/$VER/" 2>/dev/null || true
touch "$work/lib/modules/$VER/modules.order"
depmod -b "$work" "$VER"

(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$OUT.tmp"
mv "$OUT.tmp" "$OUT"
