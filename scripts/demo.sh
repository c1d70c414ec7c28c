#!/usr/bin/env bash
# The main job, end to end with the layer tools: commit upstream's writable
# layer A into a compressed, tar-wrapped layer, inspect it, stack it under
# upstream's layer B, and check the device against upstream's hash.
set -euo pipefail
cd "$(dirname "$0")/.."
V=$(cd ../shared/vectors && pwd)
work=$(mktemp -d /tmp/overlaybd-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
obd() { node dist/lib/cli/overlaybd.js "$@"; }

echo "== overlaybd-create: an empty 1 GiB sparse writable layer"
node dist/lib/cli/overlaybd-create.js -s "$work/new.data" "$work/new.index" 1
obd inspect "$work/new.data" | head -12

echo "== overlaybd-commit -z -t: upstream's writable layer A -> zstd ZFile in a tar"
cp "$V/lsmt/A.rw.data" "$V/lsmt/A.rw.index" "$work/"
node dist/lib/cli/overlaybd-commit.js -z --algorithm zstd --bs 16 -t \
  --uuid AAAAAAAA-0000-4000-8000-000000000001 -m "demo layer A" \
  "$work/A.rw.data" "$work/A.rw.index" "$work/A.layer.tar"
obd inspect "$work/A.layer.tar" | node -e '
  const j = JSON.parse(require("fs").readFileSync(0, "utf8"));
  console.log({ tar: j.tar, zfile: j.zfile, uuid: j.trailer.uuid, entries: j.entries.length });'

echo "== overlaybd dump: our A under upstream's B"
cat > "$work/config.v1.json" <<JSON
{ "lowers": [ { "file": "$work/A.layer.tar" }, { "file": "$V/lsmt/B.commit" } ] }
JSON
got=$(obd dump "$work/config.v1.json" | sha256sum | cut -d' ' -f1)
want=$(awk '$3=="lsmt/A.commit" && $4=="lsmt/B.commit" {print $1}' "$V/expected/devices.sha256")
echo "device sha256 $got"
[ "$got" = "$want" ] && echo "matches upstream's A+B device" || { echo "MISMATCH: want $want"; exit 1; }
