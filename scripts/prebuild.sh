#!/usr/bin/env bash
# npm run build:prebuild: builds the addon in Release and leaves it where
# node-gyp-build looks for prebuilt binaries. lz4, zstd, liburing, libstdc++
# and libgcc are linked statically; besides glibc the binary needs only
# zlib1g, libext2fs2 and libcom-err2, which every Debian system has.
set -euo pipefail
cd "$(dirname "$0")/.."
npx cmake-js compile -T overlaybd_native -O build/prebuild --CDOBD_STATIC_RUNTIME=ON
mkdir -p prebuilds/linux-x64
cp build/prebuild/Release/overlaybd.node prebuilds/linux-x64/overlaybd.napi.node
strip --strip-unneeded prebuilds/linux-x64/overlaybd.napi.node
extra=$(ldd prebuilds/linux-x64/overlaybd.napi.node | awk '{print $1}' | grep -vE '^(linux-vdso|/lib64/ld-linux|libc|libm|libpthread|libdl|librt|libz|libext2fs|libcom_err)\.so' | grep -v '^/lib64' || true)
if [ -n "$extra" ]; then echo "prebuild links more than glibc and libext2fs: $extra" >&2; exit 1; fi
node -e "const a=require('./prebuilds/linux-x64/overlaybd.napi.node'); if(!a.openImage) process.exit(1)"
echo "prebuilds/linux-x64/overlaybd.napi.node: $(du -h prebuilds/linux-x64/overlaybd.napi.node | cut -f1), needs only glibc, zlib1g, libext2fs2, libcom-err2"
