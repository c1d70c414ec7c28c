#!/usr/bin/env bash
# Makes a guest kernel bootable: fetches the kernels (fetch-kernels.sh) and
# builds the initramfs for KERNEL (6.1 or 6.12) unless one built from the
# same scripts and module list is cached. Prints "VMLINUZ INITRD".
# Serialised by a lock in CACHE so parallel callers share the work.
set -euo pipefail
KERNEL=${1:?usage: prepare.sh 6.1|6.12 [CACHE_DIR]}
CACHE=${2:-${OBD_GUEST_CACHE:-/var/cache/overlaybd-test}}
here=$(cd "$(dirname "$0")" && pwd)
case $KERNEL in 6.1 | 6.12) ;; *) echo "prepare.sh: unknown kernel $KERNEL" >&2; exit 2 ;; esac
MODULES="virtio_pci 9pnet_virtio 9p configfs target_core_mod target_core_user tcm_loop
  ublk_drv nbd loop fuse virtio_blk sd_mod crc32c_generic ext4 quota_v2"

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
bash "$here/fetch-kernels.sh" "$CACHE"
root=$CACHE/k$KERNEL
ver=$(cat "$root/release")
key=$(cat "$here/mkinitrd.sh" "$here/init.sh" <(echo "$ver $MODULES") | sha256sum | cut -c1-16)
initrd=$CACHE/initrd-$ver-$key.gz
if [ ! -s "$initrd" ]; then
  rm -f "$CACHE/initrd-$ver-"*.gz
  # shellcheck disable=SC2086
  bash "$here/mkinitrd.sh" "$root" "$ver" "$initrd" "$here/init.sh" $MODULES
fi
# The guest lays its modules over the host's /lib/modules, which a container may lack.
[ -d /lib/modules ] || mkdir -p /lib/modules 2>/dev/null || true
echo "$root/boot/vmlinuz-$ver $initrd"
