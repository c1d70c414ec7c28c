# A device over a remote image whose registry goes away (sourced by
# tcmu.sh and ublk.sh): reads of data not cached yet must fail with EIO in
# bounded time rather than hang, and the device must still detach. The
# registry runs on the guest's own loopback (the guest has no network), on
# the storage test/helpers/guest-registry.ts copied into the share.

# remote_eio PREFIX ATTACH DETACH: ATTACH CONFIG prints a device path,
# DETACH PATH detaches it. Prints PREFIX_* fields.
remote_eio() {
  local p=$1 attach=$2 detach=$3 reg dev t0
  ip link set lo up
  mkdir -p /tmp/remote/lower0
  docker-registry serve "$GUEST_SHARE/registry.yml" > "$GUEST_SHARE/registry-$p.log" 2>&1 &
  reg=$!
  for _ in $(seq 300); do curl -sf http://127.0.0.1:5000/v2/ > /dev/null && break; sleep 0.2; done
  echo "${p}_registry=$(curl -sf -o /dev/null -w '%{http_code}' http://127.0.0.1:5000/v2/)"
  dev=$($attach "$GUEST_SHARE/remote.json")
  echo "${p}_dev=$dev"
  # While the registry serves: the ext4 superblock and group descriptors come through.
  dd if="$dev" of=/dev/null bs=1M count=4 iflag=direct status=none && echo "${p}_read_before=ok"
  kill $reg; wait $reg 2> /dev/null
  t0=$(date +%s)
  # 256 MiB from 64 MiB on: data blocks nothing has read yet. 124 would be the timeout (a hang).
  timeout 300 dd if="$dev" of=/dev/null bs=1M skip=64 count=256 iflag=direct status=none 2> /tmp/remote-dd.err
  echo "${p}_dd_rc=$?"
  echo "${p}_dd_eio=$(grep -c 'Input/output error' /tmp/remote-dd.err)"
  echo "${p}_dd_s=$(($(date +%s) - t0))"
  $detach "$dev"
  echo "${p}_gone=$(test -e "$dev" && echo no || echo yes)"
}
