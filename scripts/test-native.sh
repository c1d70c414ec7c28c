#!/usr/bin/env bash
# Builds the GoogleTest suite (cpp/tests) and runs it with ctest; no Node
# involved. Shares build-tools with the native drivers the vitest suite
# builds. Extra arguments go to ctest (say, -R Device).
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${OBD_NATIVE_BUILD_DIR:-build-tools}
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$dir" --target obd_tests
ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@"
