#!/usr/bin/env bash
# npm run build:prebuild: prebuildify makes prebuilds/linux-x64/overlaybd.glibc.node,
# which node-gyp-build loads. prebuildify only knows node-gyp, so its --node-gyp
# option runs scripts/prebuild-cmake.sh instead (see docs/decisions.md). lz4,
# zstd, liburing, libstdc++ and libgcc are linked statically; besides glibc the
# binary needs only zlib1g, libext2fs2 and libcom-err2, on every Debian system.
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
extra=$(ldd "$out" | awk '{print $1}' | grep -vE '^(linux-vdso|/lib64/ld-linux|libc|libm|libpthread|libdl|librt|libz|libext2fs|libcom_err)\.so' | grep -v '^/lib64' || true)
if [ -n "$extra" ]; then echo "prebuild links more than glibc and libext2fs: $extra" >&2; exit 1; fi
PREBUILDS_ONLY=1 node -e "const a=require('node-gyp-build')('.'); if(!a.openImage) process.exit(1)"
echo "$out: $(du -h "$out" | cut -f1), needs only glibc, zlib1g, libext2fs2, libcom-err2"
