#!/bin/sh
# /init of the guest initramfs (busybox sh). Mounts the host root read-only
# (9p tag hostroot) on /host with tmpfs on /tmp, /run and /var/tmp, mounts the
# read-write scratch share (tag share) at its host path (kernel arg
# obd.share=PATH), makes the guest's modules visible to the host's modprobe,
# then runs PATH/.guest-run.sh as root in a chroot of /host. Its output goes
# to PATH/.guest-out.log, its exit status to PATH/.guest-rc and to the console
# as a marker line.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
share=$(sed -n 's/.*obd\.share=\([^ ]*\).*/\1/p' /proc/cmdline)
echo "OBD-GUEST-START uptime=$(cut -d' ' -f1 /proc/uptime) kernel=$(uname -r)"

fail() { echo "OBD-GUEST-FAIL $*"; poweroff -f; }
for m in virtio_pci 9pnet_virtio 9p configfs; do modprobe "$m" || fail "modprobe $m"; done
opts=trans=virtio,version=9p2000.L,msize=512000
mount -t 9p -o "$opts,ro,cache=loose" hostroot /host || fail "mount hostroot"
for d in tmp run var/tmp; do mount -t tmpfs tmpfs "/host/$d" || fail "tmpfs /host/$d"; done
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t configfs configfs /host/sys/kernel/config || fail "mount configfs"
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/pts /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
# The host root has no modules for this kernel: lay the initramfs ones over its
# /lib/modules (prepare.sh creates that dir when the host lacks it).
mount -o bind /lib/modules /host/lib/modules || echo "OBD-GUEST-WARN no /lib/modules: modprobe in the chroot will fail"
mkdir -p "/host$share" 2>/dev/null
mount -t 9p -o "$opts,rw" share "/host$share" || fail "mount share at $share"

chroot /host /bin/bash "$share/.guest-run.sh" >"/host$share/.guest-out.log" 2>&1
rc=$?
echo "$rc" >"/host$share/.guest-rc"
sync
echo "OBD-GUEST-EXIT rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
umount "/host$share"
poweroff -f
