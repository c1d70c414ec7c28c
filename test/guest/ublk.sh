#!/bin/bash
# The ublk checks of test/device-ublk.test.ts, run once inside the 6.12
# guest (cwd = the repo, $GUEST_SHARE = the host dir with the images and
# configs the test prepared). One device service for the whole run (node
# is slow under TCG); devices are asked for over its control socket with
# curl, except one `overlaybd attach` to check the CLI. Every result is a
# `name=value` line; `set -e` is off so one failure doesn't hide the rest.
S=/run/obd/ctl.sock
SH=$GUEST_SHARE
LOOPS=${LOOPS:-200}
LOOP_BUDGET_S=${OBD_GUEST_LOOP_S:-60}
now() { date +%s%N | cut -c1-13; }
. test/guest/remote-eio.sh
api() { curl -sS --max-time 300 --unix-socket "$S" -X "$1" -H 'content-type: application/json' ${3:+-d "$3"} "http://obd$2"; }
field() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
start_service() { # $1: log name
  node build/guest-js/lib/cli/overlaybd-tcmu.js "$SH/overlaybd.json" >"$SH/$1.log" 2>&1 &
  SVC=$!
  for _ in $(seq 600); do api GET /list >/dev/null 2>&1 && return 0; kill -0 $SVC 2>/dev/null || return 1; sleep 0.2; done
  return 1
}
# fds/threads of the service; io_uring's own workers (iou-wrk-*, kernel
# threads that come and go with the load) are not the service's.
counts() { echo "$(ls /proc/$SVC/fd | wc -l)/$(cat /proc/$SVC/task/*/comm | grep -vc '^iou-')"; }
# Runs fio_job in the background; if it is still running after $1 s, prints
# what a stuck run leaves to look at (prefix $2): fio's last lines, the
# device's in-flight counts, the kernel log and where the service's threads
# wait. Then waits for it and returns its status.
fio_watched() {
  local limit=$1 name=$2 dev=$3 log=$4; shift 4
  fio_job "$dev" "$@" >"$log" 2>&1 &
  local pid=$! n=0
  while kill -0 $pid 2>/dev/null && [ $n -lt $((limit * 10)) ]; do sleep 0.1; n=$((n + 1)); done
  if kill -0 $pid 2>/dev/null; then
    echo "${name}_stuck_tail=$(tail -n 12 "$log" | tr '\n' '|')"
    echo "${name}_stuck_inflight=$(cat /sys/block/${dev#/dev/}/inflight 2>/dev/null)"
    echo "${name}_stuck_dmesg=$(dmesg | tail -n 12 | tr '\n' '|')"
    echo "${name}_stuck_threads=$(for t in /proc/$SVC/task/*; do echo "$(cat $t/comm):$(awk '{print $2}' $t/stack 2>/dev/null | head -3 | tr '\n' ',')"; done | sort | uniq -c | tr '\n' '|')"
  fi
  wait $pid
}
fio_job() { # fio with the options every run here shares; $1 = device, rest = extra options
  local dev=$1; shift
  timeout 300 fio --name=obd --filename="$dev" --offset=1G --size=16M --bs=4k --ioengine=libaio --iodepth=16 --direct=1 \
    --verify=crc32c --verify_fatal=1 --verify_state_save=0 --randseed=1234 "$@"
}

modprobe -a ublk_drv ext4 crc32c_generic
mkdir -p /run/obd /tmp/mnt-ro /tmp/mnt-kill
# Writable uppers on the guest's tmpfs (writes over 9p cost ~10 ms each under TCG).
UP=/tmp/obd-up
# The lower too: reads from RAM rather than 9p.
mkdir -p $UP && cp "$SH"/upper*.data "$SH"/upper*.index "$SH/layer0" $UP/
t0=$(now)
start_service svc1 && echo "svc1=ok"
echo "svc1_start_ms=$(( $(now) - t0 ))"

# (a) The bookworm image attached read-only; ext4 mounted, chroot, the tree.
DEV=$(node build/guest-js/lib/cli/overlaybd.js attach --frontend ublk --socket "$S" "$SH/ro.json")
echo "ro_dev=$DEV"
echo "ro_flag=$(blockdev --getro "$DEV")"
echo "ro_size=$(blockdev --getsize64 "$DEV")"
echo "ro_list=$(api GET /list | field frontend)"
mount -t ext4 -o ro "$DEV" /tmp/mnt-ro && echo "ro_mount=ok"
echo "ro_chroot=$(chroot /tmp/mnt-ro cat /etc/debian_version)"
t0=$(now)
timeout 240 bash -c '. test/guest/tree-list.sh && tree_list /tmp/mnt-ro' >"$SH/tree.txt" && echo "ro_tree=ok"
echo "ro_tree_ms=$(( $(now) - t0 ))"
echo "ro_busy=$(api POST /detach "{\"device\":\"$DEV\"}" | field code)"
umount /tmp/mnt-ro
echo "ro_detach=$(api POST /detach "{\"device\":\"$DEV\"}" | field success)"
echo "ro_gone=$(ls /dev/ublkb* /dev/ublkc* 2>/dev/null | wc -l)"

# (b) fio writes with crc32c headers on a writable device, flush, detach;
# the upper is committed and the committed layer (under a fresh upper, so
# fio may open the device read-write) verifies.
RW=$(api POST /attach "{\"config\":\"$SH/rw.json\",\"frontend\":\"ublk\"}" | field path)
echo "rw_dev=$RW"
echo "rw_flag=$(blockdev --getro "$RW")"
t0=$(now)
fio_watched 120 rw "$RW" "$SH/fio-write.log" --rw=randwrite --do_verify=1
echo "rw_fio=$?"
echo "rw_fio_ms=$(( $(now) - t0 ))"
echo "rw_fio_err=$(grep -o 'err= *[0-9]*' "$SH/fio-write.log" | head -1 | tr -d ' ')"
echo "rw_fio_bw=$(sed -n 's/^ *WRITE: bw=\([^ ]*\).*/\1/p' "$SH/fio-write.log")"
blkdiscard -f -o $((1536 << 20)) -l $((1 << 20)) "$RW" && echo "rw_discard=ok"
sync; blockdev --flushbufs "$RW"
echo "rw_detach=$(api POST /detach "{\"device\":\"$RW\"}" | field success)"
node build/guest-js/lib/cli/overlaybd-commit.js $UP/upper.data $UP/upper.index $UP/committed.lsmt >"$SH/commit.log" 2>&1
echo "commit=$?"
RO2=$(api POST /attach "{\"config\":\"$SH/committed.json\",\"frontend\":\"ublk\"}" | field path)
echo "verify_dev=$RO2"
fio_job "$RO2" --rw=randwrite --verify_only >"$SH/fio-verify.log" 2>&1
echo "verify_fio=$?"
echo "verify_fio_err=$(grep -o 'err= *[0-9]*' "$SH/fio-verify.log" | head -1 | tr -d ' ')"
echo "verify_fio_bw=$(sed -n 's/^ *READ: bw=\([^ ]*\).*/\1/p' "$SH/fio-verify.log")"
echo "verify_detach=$(api POST /detach "{\"device\":\"$RO2\"}" | field success)"

# (c) SIGKILL of the service under a read/write workload with verification;
# the restarted service takes the device over and fio ends without errors.
# A second device holds a mounted ext4 (made on upper4's device): a file
# written and synced before the kill reads back through the
# same mount after the restart, another is written, fsck finds it clean.
K=$(api POST /attach "{\"config\":\"$SH/kill.json\",\"frontend\":\"ublk\"}" | field path)
echo "kill_dev=$K"
M=$(api POST /attach "{\"config\":\"$SH/mount.json\",\"frontend\":\"ublk\"}" | field path)
echo "mount_dev=$M"
# A small fresh ext4 (64 MiB of the device): fsck of the image's own would cost minutes under TCG.
mkfs.ext4 -q -F "$M" 64M && mount -t ext4 "$M" /tmp/mnt-kill && echo "mount_ok=ok"
head -c 4M /dev/urandom >/tmp/kill-f1; head -c 4M /dev/urandom >/tmp/kill-f2
cp /tmp/kill-f1 /tmp/mnt-kill/f1 && sync && echo "mount_before=ok"
dmesg -C
# Mixed reads and writes, each write verified from the backlog (randrw's
# sound verify mode: see tcmu.sh). Throttled to 400 IOPS (15 s) so the kill
# lands in the workload however fast the guest runs.
fio_job "$K" --rw=randrw --verify_backlog=64 --size=24M --rate_iops=400 >"$SH/fio-kill.log" 2>&1 &
FIO=$!
sleep 4
kill -0 $FIO 2>/dev/null && echo "kill_fio_running=yes"
kill -9 $SVC; wait $SVC 2>/dev/null
echo "kill_dev_kept=$(test -b "$K" && echo yes)"
t0=$(now)
start_service svc2 && echo "svc2=ok"
echo "svc2_start_ms=$(( $(now) - t0 ))"
echo "kill_list=$(api GET /list | grep -o '"path":"[^"]*"' | cut -d'"' -f4 | sort | tr '\n' ' ')"
wait $FIO
echo "kill_fio=$?"
echo "kill_fio_err=$(grep -o 'err= *[0-9]*' "$SH/fio-kill.log" | head -1 | tr -d ' ')"
echo "kill_detach=$(api POST /detach "{\"device\":\"$K\"}" | field success)"
sync; echo 3 >/proc/sys/vm/drop_caches  # f1 is read from the device, through the new service
cmp /tmp/kill-f1 /tmp/mnt-kill/f1 && echo "mount_after=ok"
cp /tmp/kill-f2 /tmp/mnt-kill/f2 && sync && echo "mount_write=ok"
umount /tmp/mnt-kill && echo "mount_umount=ok"
e2fsck -fn "$M" >"$SH/fsck-kill.log" 2>&1; echo "mount_fsck=$?"
echo "kill_io_errors=$(dmesg | grep -c -i 'I/O error')"
echo "mount_detach=$(api POST /detach "{\"device\":\"$M\"}" | field success)"

# (e) the live snapshot API (§6.6): A (2 MiB at 1 GiB) written, `overlaybd
# snapshot` seals upper5 and moves the device onto upper6, B (2 MiB at
# 1 GiB + 1 MiB, over A's second half) written. The host checks both layers.
R=$(api POST /attach "{\"config\":\"$SH/snap.json\",\"frontend\":\"ublk\"}")
D=$(echo "$R" | field path); ID=$(echo "$R" | field id)
echo "snap_dev=$D"
dd if="$SH/snap-a.bin" of="$D" bs=1M seek=1024 oflag=direct conv=fsync status=none && echo "snap_write_a=ok"
node build/guest-js/lib/cli/overlaybd.js snapshot --socket "$S" "$ID" "$SH/snap-next.json"; echo "snap_api=$?"
dd if="$SH/snap-b.bin" of="$D" bs=1M seek=1025 oflag=direct conv=fsync status=none && echo "snap_write_b=ok"
echo "snap_read=$(dd if="$D" bs=1M skip=1024 count=3 iflag=direct status=none | sha256sum | cut -c1-64)"
echo "snap_next_left=$(test -e "$SH/snap-next.json" && echo yes || echo no)"
echo "snap_detach=$(api POST /detach "{\"device\":\"$D\"}" | field success)"
cp $UP/upper5.* $UP/upper6.* "$SH/"

# (f) a remote image whose registry stops: EIO, not a hang; detach works.
uattach() { api POST /attach "{\"config\":\"$1\",\"frontend\":\"ublk\"}" | field path; }
udetach() { api POST /detach "{\"device\":\"$1\"}" >/dev/null; }
remote_eio remote uattach udetach

# (d) attach/detach in a loop: nothing left behind, service fds and threads back to the baseline.
api POST /detach "{\"device\":\"$(api POST /attach "{\"config\":\"$SH/ro.json\",\"frontend\":\"ublk\"}" | field path)\"}" >/dev/null
base=$(counts)
n=0; t0=$(now); fails=0
while [ $n -lt "$LOOPS" ] && [ $(( ($(now) - t0) / 1000 )) -lt "$LOOP_BUDGET_S" ]; do
  D=$(api POST /attach "{\"config\":\"$SH/ro.json\",\"frontend\":\"ublk\"}" | field path)
  case "$D" in /dev/ublkb*) ;; *) fails=$((fails + 1)) ;; esac
  [ "$(api POST /detach "{\"device\":\"$D\"}" | field success)" = true ] || fails=$((fails + 1))
  n=$((n + 1))
done
echo "loop_n=$n"
echo "loop_ms=$(( $(now) - t0 ))"
echo "loop_fails=$fails"
# Threads may take a moment to be joined after the last detach answered.
for _ in $(seq 20); do [ "$(counts)" = "$base" ] && break; sleep 1; done
echo "loop_counts=$base $(counts)"
echo "loop_left=$(ls /dev/ublkb* /dev/ublkc* 2>/dev/null | wc -l)"
echo "loop_list=$(api GET /list)"

kill -TERM $SVC; wait $SVC
echo "svc_exit=$?"
echo "state=$(tr -d ' \n' <"/run/obd/ctl.devices.json")"
