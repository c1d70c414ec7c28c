#!/usr/bin/env bash
# prebuildify's build step for this cmake-js project, run in place of
# `node-gyp rebuild --target=... --arch=... --release` in prebuildify's --cwd.
# The node-gyp arguments are ignored: an N-API addon does not depend on the
# Node version, and it is built for the host. The addon lands in ./build/Release,
# where prebuildify takes it from.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
exec node "$root/node_modules/cmake-js/bin/cmake-js" compile -d "$root" -O "$PWD/build" \
  -T overlaybd_native --CDOBD_STATIC_RUNTIME=ON
