#!/usr/bin/env bash
# npm run build:prebuild: prebuildify makes prebuilds/linux-x64/overlaybd.glibc.node,
# which node-gyp-build loads. prebuildify only knows node-gyp, so its --node-gyp
# option runs scripts/prebuild-cmake.sh instead (see docs/decisions.md). lz4,
# zstd, liburing, libstdc++ and libgcc are linked statically; besides glibc the
# binary needs Debian's shared zlib1g, libext2fs2, libcom-err2 (on every Debian
# system), libcurl4 and libssl3 (remote reads) and libfuse3-3 (the FUSE frontend).
set -euo pipefail
cd "$(dirname "$0")/.."
# prebuildify takes the .node from <cwd>/build/Release: a folder of its own keeps
# it apart from the developer's build/Release.
stage=build/prebuildify
mkdir -p "$stage"
rm -rf prebuilds/linux-x64
npx --no-install prebuildify --napi --strip --tag-libc --name overlaybd \
  --cwd "$stage" --out . --node-gyp "$PWD/scripts/prebuild-cmake.sh"
out=prebuilds/linux-x64/overlaybd.glibc.node
# The libraries the addon itself names (their own dependencies come with their packages).
extra=$(readelf -d "$out" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p' | grep -vE '^(ld-linux-x86-64|libc|libm|libpthread|libdl|librt|libz|libext2fs|libcom_err|libcurl|libcrypto|libfuse3)\.so' || true)
if [ -n "$extra" ]; then echo "prebuild links more than the Debian libraries it may: $extra" >&2; exit 1; fi
PREBUILDS_ONLY=1 node -e "const a=require('node-gyp-build')('.'); if(!a.openImage) process.exit(1)"
echo "$out: $(du -h "$out" | cut -f1), needs glibc, zlib1g, libext2fs2, libcom-err2, libcurl4, libssl3, libfuse3-3"
