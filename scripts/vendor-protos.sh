#!/usr/bin/env bash
# Copies containerd's API protos from Debian's golang-github-containerd-containerd-dev
# into proto/, stripping the gogoproto code-generation options (see proto/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
SRC=/usr/share/gocode/src/github.com/containerd/containerd
DST=proto/github.com/containerd/containerd
rm -rf "$DST"
(cd "$SRC" && find api -name '*.proto' ! -path '*/ttrpc/*' ! -path 'api/events/*' ! -path '*/introspection/*') |
while read -r f; do
  mkdir -p "$DST/$(dirname "$f")"
  sed -e '/gogoproto\/gogo.proto/d' -e 's/ *\[(gogoproto[^]]*\]//g' -e '/^\s*option (gogoproto/d' \
      -e '/protobuf\/plugin\/fieldpath.proto/d' -e '/option (containerd.plugin.fieldpath)/d' \
      "$SRC/$f" > "$DST/$f"
done
node --import tsx scripts/proto-json.ts
