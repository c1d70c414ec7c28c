# The TCMU frontend end to end, in the 6.1 guest (test/device-tcmu.test.ts
# boots it once). Prints `name=value` lines; set -e is off so one failure
# does not hide the rest. Inputs in $GUEST_SHARE: overlaybd.json, the
# layer, tree-list.sh, sg_write.py, remote-eio.sh, snap-a.bin, snap-b.bin,
# the guest registry's storage and remote.json; $JS is the repo's lib compiled to
# JavaScript (tsx under TCG costs a minute per process). The layer and the
# uppers live in the guest's tmpfs (9p costs ~25 ms a request); the uppers
# go back to the share at the end for the host to commit.
S=$GUEST_SHARE
JS=build/guest-js/lib/cli
SOCK=/tmp/obd.sock
T0=$(date +%s)
. "$S/tree-list.sh"
. "$S/remote-eio.sh"
modprobe -a target_core_user tcm_loop sd_mod crc32c_generic ext4
mkdir -p /tmp/mnt /tmp/mnt-c /tmp/img
cp "$S/bookworm.lz4.blob" "$S"/rw*.data "$S"/rw*.index "$S"/snap*.data "$S"/snap*.index /tmp/img/
L='{"lowers":[{"file":"/tmp/img/bookworm.lz4.blob"}]'
up() { echo ",\"upper\":{\"data\":\"/tmp/img/$1.data\",\"index\":\"/tmp/img/$1.index\"}"; }
echo "$L}" > /tmp/img/ro.json; echo "$L}" > /tmp/img/raw.json
echo "$L$(up rw)}" > /tmp/img/rw.json; echo "$L$(up rw2)}" > /tmp/img/rw2.json; echo "$L$(up rw3)}" > /tmp/img/rw3.json
echo "$L$(up snap1)}" > /tmp/img/snap.json
echo "{\"lowers\":[{\"file\":\"/tmp/img/bookworm.lz4.blob\"},{\"file\":\"/tmp/img/snap1.data\"}]$(up snap2)}" > /tmp/img/snap-next.json
cfg_entries() { ls /sys/kernel/config/target/core /sys/kernel/config/target/loopback 2>/dev/null | tr '\n' ' '; }

svc_start() {
  node $JS/overlaybd-tcmu.js "$S/overlaybd.json" >> "$S/service.log" 2>&1 &
  SVC=$!
  for _ in $(seq 600); do
    curl -s --unix-socket $SOCK http://x/list >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  return 1
}
api() { curl -s --unix-socket $SOCK -X POST -H 'content-type: application/json' -d "$2" "http://x/$1"; }
attach() { api attach "{\"config\":\"$1\",\"frontend\":\"tcmu\"}" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p'; }
detach() { api detach "{\"device\":\"$1\"}" >/dev/null; }
fio_args="--direct=1 --ioengine=libaio --bs=4k --offset=1g --verify=crc32c --randrepeat=1 --randseed=7 --verify_state_save=0"
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

svc_start; echo "service_start_s=$(($(date +%s) - T0))"

# (a) the CLI attaches the bookworm image; read-only ext4, chroot, the tree.
DEV=$(node $JS/overlaybd.js attach --frontend tcmu --socket $SOCK /tmp/img/ro.json)
echo "a_dev=$DEV"
echo "a_ro=$(blockdev --getro "$DEV")"
echo "a_size=$(blockdev --getsize64 "$DEV")"
mount -t ext4 -o ro "$DEV" /tmp/mnt && echo "a_mount=ok"
echo "a_version=$(chroot /tmp/mnt cat /etc/debian_version)"
tree_list /tmp/mnt > "$S/tree-guest.txt"; echo "a_tree_rc=$?"
umount /tmp/mnt
# A WRITE sent past the block layer's read-only check fails with DATA PROTECT.
echo "a_sg_write=$(python3 "$S/sg_write.py" "$DEV" 4096)"
detach "$DEV"; echo "a_gone=$(test -e "$DEV" && echo no || echo yes)"

# (b) a writable device: fio writes and verifies, detach, a fresh attach re-verifies.
DEV=$(attach /tmp/img/rw.json)
echo "b_ro=$(blockdev --getro "$DEV")"
fio --name=b --filename="$DEV" $fio_args --rw=randwrite --iodepth=32 --size=8m --do_verify=1 > "$S/fio-b.log" 2>&1
echo "b_fio_rc=$?"
sync; blockdev --flushbufs "$DEV"
detach "$DEV"
DEV=$(attach /tmp/img/rw.json)
fio --name=b --filename="$DEV" $fio_args --rw=randwrite --iodepth=32 --size=8m --verify_only > "$S/fio-b-verify.log" 2>&1
echo "b_verify_rc=$?"
detach "$DEV"

# (c) kill -9 of the service under a read/write workload; the restarted one
# takes the rings over. A second device holds a mounted ext4 (made on rw3):
# a file written and synced before the kill reads back
# through the same mount after the restart, another one is written, and
# fsck finds the filesystem clean.
DEV=$(attach /tmp/img/rw2.json)
echo "c_dev=$DEV"
M=$(attach /tmp/img/rw3.json)
# A small fresh ext4 (64 MiB of the device): fsck of the image's own would cost minutes under TCG.
mkfs.ext4 -q -F "$M" 64M && mount -t ext4 "$M" /tmp/mnt-c && echo "c_m_mount=ok"
head -c 4M /dev/urandom > /tmp/c-f1; head -c 4M /dev/urandom > /tmp/c-f2
cp /tmp/c-f1 /tmp/mnt-c/f1 && sync && echo "c_m_before=ok"
errors_before=$(dmesg | grep -c 'I/O error')
# Mixed random reads and writes; verify_backlog checks each written block
# as it goes, then the verify phase checks them all. (Verify with randrw
# and loops>1 reports false "bad header rand_seed" mismatches, the same on
# a plain file: fio issue #746; the backlog is fio's sound way to verify
# a mixed workload.) Throttled to 200 IOPS, so it lasts 10 s however fast
# the guest runs and the kill lands in it.
fio --name=c --filename="$DEV" $fio_args --rw=randrw --verify_backlog=64 --iodepth=16 --size=8m --rate_iops=200 --do_verify=1 > "$S/fio-c.log" 2>&1 &
FIO=$!
sleep 3
kill -9 $SVC; wait $SVC 2>/dev/null
echo "c_fio_alive_after_kill=$(kill -0 $FIO 2>/dev/null && echo yes || echo no)"
svc_start; echo "c_restart=$?"
wait $FIO; echo "c_fio_rc=$?"
echo "c_listed=$(curl -s --unix-socket $SOCK http://x/list | grep -c "\"path\":\"$DEV\"")"
detach "$DEV"; echo "c_gone=$(test -e "$DEV" && echo no || echo yes)"
drop_caches  # f1 is read from the device, through the new handler
cmp /tmp/c-f1 /tmp/mnt-c/f1 && echo "c_m_after=ok"
cp /tmp/c-f2 /tmp/mnt-c/f2 && sync && echo "c_m_write=ok"
umount /tmp/mnt-c && echo "c_m_umount=ok"
e2fsck -fn "$M" > "$S/fsck-c.log" 2>&1; echo "c_m_fsck=$?"
echo "c_io_errors=$(($(dmesg | grep -c 'I/O error') - errors_before))"
detach "$M"

# (d) a device made with upstream's configfs steps (§1.6) by this shell alone.
raw_attach() {
  local id=$1 cfg=$2 t=/sys/kernel/config/target/core/user_999999999/dev_$1 naa lb a d
  naa=naa.199$(printf %013d "$id"); lb=/sys/kernel/config/target/loopback/$naa
  mkdir -p "$t"
  echo -n "dev_config=overlaybd/$cfg" > "$t/control"
  echo -n "max_data_area_mb=4" > "$t/control"
  echo -n 1 > "$t/enable"
  echo -n 2147483 > "$t/attrib/cmd_time_out"
  mkdir -p "$lb/tpgt_1/lun/lun_0"
  echo -n "$naa" > "$lb/tpgt_1/nexus"
  ln -s "$t" "$lb/tpgt_1/lun/lun_0/dev_$id"
  a=$(cat "$lb/tpgt_1/address")
  for _ in $(seq 300); do
    d=$(ls "/sys/class/scsi_device/$a:0/device/block/" 2>/dev/null)
    [ -n "$d" ] && break
    sleep 0.1
  done
  echo -n 2147483 > "/sys/block/$d/device/timeout"
  echo "/dev/$d"
}
raw_detach() {
  local id=$1 naa
  naa=/sys/kernel/config/target/loopback/naa.199$(printf %013d "$id")
  rm "$naa/tpgt_1/lun/lun_0/dev_$id"; rmdir "$naa/tpgt_1/lun/lun_0" "$naa/tpgt_1" "$naa"
  rmdir "/sys/kernel/config/target/core/user_999999999/dev_$id"
}
DEV=$(raw_attach 128 /tmp/img/raw.json)
echo "d_dev=$DEV"
mount -t ext4 -o ro "$DEV" /tmp/mnt && echo "d_version=$(cat /tmp/mnt/etc/debian_version)"
umount /tmp/mnt
echo "d_listed=$(curl -s --unix-socket $SOCK http://x/list | grep -c 'tcmu-999999999-dev_128')"
raw_detach 128
sleep 3
echo "d_pruned=$(curl -s --unix-socket $SOCK http://x/list | grep -c 'tcmu-999999999-dev_128')"
rmdir /sys/kernel/config/target/core/user_999999999 2>/dev/null

# (f) the live snapshot API (§6.6): A (2 MiB at 1 GiB) written, a snapshot
# seals snap1 and moves the device onto snap2, B (2 MiB at 1 GiB
# + 1 MiB, over A's second half) written. The host checks both layers.
R=$(api attach '{"config":"/tmp/img/snap.json","frontend":"tcmu"}')
DEV=$(echo "$R" | sed -n 's/.*"path":"\([^"]*\)".*/\1/p'); ID=$(echo "$R" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
echo "f_dev=$DEV"
dd if="$S/snap-a.bin" of="$DEV" bs=1M seek=1024 oflag=direct conv=fsync status=none && echo "f_write_a=ok"
# The API on the control socket, as `overlaybd snapshot` calls it (ublk.sh
# runs the CLI itself; a node start costs a minute here under TCG).
echo "f_snapshot=$(curl -s --max-time 300 --unix-socket $SOCK "http://x/snapshot?dev_id=$ID&config=/tmp/img/snap-next.json" | grep -c '"success":true')"
dd if="$S/snap-b.bin" of="$DEV" bs=1M seek=1025 oflag=direct conv=fsync status=none && echo "f_write_b=ok"
echo "f_read=$(dd if="$DEV" bs=1M skip=1024 count=3 iflag=direct status=none | sha256sum | cut -c1-64)"
echo "f_next_left=$(test -e /tmp/img/snap-next.json && echo yes || echo no)"
detach "$DEV"
cp /tmp/img/snap1.* /tmp/img/snap2.* /tmp/img/snap.json "$S/"

# (g) a remote image whose registry stops: EIO, not a hang; detach works.
remote_eio g attach detach

# (e) attach/detach in a loop: nothing left behind, fds and threads back to the baseline.
DEV=$(attach /tmp/img/ro.json); detach "$DEV"  # warm-up: the image service's lazy threads
fds0=$(ls /proc/$SVC/fd | wc -l); thr0=$(ls /proc/$SVC/task | wc -l); cfg_base=$(cfg_entries)
n=0; bad=0; t=$(date +%s)
while [ $n -lt 200 ] && [ $(($(date +%s) - t)) -lt ${OBD_GUEST_LOOP_S:-45} ]; do
  DEV=$(attach /tmp/img/ro.json)
  [ -b "$DEV" ] || bad=$((bad + 1))
  detach "$DEV"
  n=$((n + 1))
done
echo "e_loops=$n"
echo "e_bad=$bad"
echo "e_loop_s=$(($(date +%s) - t))"
sleep 1
echo "e_fds=$(ls /proc/$SVC/fd | wc -l)/$fds0"
echo "e_threads=$(ls /proc/$SVC/task | wc -l)/$thr0"
echo "e_configfs=[$(cfg_entries)]/[$cfg_base]"
echo "e_sd=$(ls /sys/block | grep -c '^sd')"
echo "e_uio=$(ls /sys/class/uio | wc -l)"

kill -TERM $SVC; wait $SVC; echo "service_rc=$?"
cp /tmp/img/rw.data /tmp/img/rw.index "$S/"
echo "guest_script_s=$(($(date +%s) - T0))"
