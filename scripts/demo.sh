#!/usr/bin/env bash
# The main job (see scripts/demo.ts): convert a real Debian image to overlaybd
# through a local registry, then mount it and run a command in it.
set -euo pipefail
cd "$(dirname "$0")/.."
exec node --import tsx scripts/demo.ts
