#!/usr/bin/env bash
# Installs what @dadi/overlaybd needs on Debian 12 and builds it. Idempotent:
# installs only missing packages, runs npm ci only when the lock changed, and
# lets CMake/tsc rebuild only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: compiler, CMake, the system libraries the native core links, and
# GoogleTest for the native tests (cpp/tests). libisal-dev: igzip, the fast
# gunzip of layer blobs (optional to the build: zlib is the fallback).
# ccache: the from-source package build and the native test build reuse the
# objects of the first build (CMakeLists.txt).
BUILD_PKGS=(g++ ccache cmake ninja-build pkg-config zlib1g-dev libisal-dev liblz4-dev libzstd-dev liburing-dev libext2fs-dev comerr-dev libfuse3-dev libgtest-dev libcurl4-openssl-dev libssl-dev)
# Run and test: ext4 tools, FUSE, a registry, an HTTP proxy (P2P tests),
# image tools, MariaDB, TLS, and the qemu guest for kernel-frontend tests
# (scripts/guest: busybox initramfs, modules resolved with kmod); containerd
# 1.6 + runc for the snapshotter tests, and Go with containerd's source for
# containerd's own snapshotter test suite (built offline in GOPATH mode).
RUN_PKGS=(e2fsprogs fuse3 docker-registry nginx-light curl skopeo umoci mmdebstrap gpg libdpkg-perl mount debian-archive-keyring apache2-utils openssl mariadb-server python3 zstd qemu-system-x86 busybox-static cpio kmod xz-utils fio containerd runc golang-go golang-github-containerd-containerd-dev libcap2-bin buildah time containernetworking-plugins iproute2 iptables tinyproxy)

missing=()
for p in "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -q
  # One apt-get at a time (dpkg lock); services are not started (no systemd).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi

npm run build

# Make this package's own tools runnable as `npx <tool>` in the checkout:
# link them into node_modules/.bin (npx looks there first) and mark them executable.
node -e '
const fs = require("fs");
const { bin } = require("./package.json");
for (const [name, file] of Object.entries(bin)) {
  fs.chmodSync(file, 0o755);
  const link = `node_modules/.bin/${name}`;
  fs.rmSync(link, { force: true });
  fs.symlinkSync(`../../${file}`, link);
}'
