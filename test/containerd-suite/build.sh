#!/bin/bash
# Builds, offline, the containerd snapshotter-suite test binary and the
# reference snapshotter from Debian's Go sources (GOPATH mode, no modules).
# Usage: build.sh [OUT_DIR]   (default: build/containerd-suite)
# Writes OUT_DIR/suite.test and OUT_DIR/ref-snapshotter.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
out="$(mkdir -p "${1:-$repo/build/containerd-suite}" && cd "${1:-$repo/build/containerd-suite}" && pwd)"
system_gopath=/usr/share/gocode

if ! command -v go >/dev/null; then
	echo "build.sh: go not found (install golang-go)" >&2
	exit 1
fi
if [ ! -d "$system_gopath/src/github.com/containerd/containerd/snapshots/testsuite" ]; then
	echo "build.sh: containerd sources missing (install golang-github-containerd-containerd-dev)" >&2
	exit 1
fi

# Our packages must sit under a GOPATH src dir; link them into a private one.
gopath="$out/gopath"
pkg_dir="$gopath/src/overlaybd.test/containerd-suite"
mkdir -p "$(dirname "$pkg_dir")"
ln -sfn "$here" "$pkg_dir"

export GO111MODULE=off GOPATH="$gopath:$system_gopath" GOPROXY=off GOFLAGS=
export GOCACHE="${GOCACHE:-$out/gocache}" CGO_ENABLED="${CGO_ENABLED:-1}"

go test -c -o "$out/suite.test" overlaybd.test/containerd-suite/suite
go build -o "$out/ref-snapshotter" overlaybd.test/containerd-suite/ref
echo "build.sh: built $out/suite.test $out/ref-snapshotter"
