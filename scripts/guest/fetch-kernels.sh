#!/usr/bin/env bash
# Fetches the two Debian kernels the guest tests boot, unpacked under CACHE:
#   CACHE/k6.1   bookworm's linux-image-amd64 (target_core_user, tcm_loop)
#   CACHE/k6.12  bookworm-backports' linux-image-amd64 (also ublk_drv)
# Each dir holds the unpacked package (boot/, lib/modules/ with modules.dep)
# and a `release` file. apt runs on private lists and archives, so the
# host's apt state and kernel packages are untouched. Idempotent: a kernel
# whose `release` exists is not fetched again.
set -euo pipefail
CACHE=${1:?usage: fetch-kernels.sh CACHE_DIR}
MIRROR=${MIRROR:-$(sed -n 's/^URIs:[[:space:]]*//p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

# fetch NAME SUITE: resolves linux-image-amd64 in SUITE and unpacks it.
fetch() {
  local dir=$CACHE/$1 suite=$2
  [ -s "$dir/release" ] && return 0
  local apt=$CACHE/apt-$1
  rm -rf "$apt" "$dir.tmp"
  mkdir -p "$apt"/{lists/partial,archives/partial,etc} "$dir.tmp"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $suite main" >"$apt/etc/sources.list"
  local A=(-o "Dir::Etc::SourceList=$apt/etc/sources.list" -o Dir::Etc::SourceParts=/nonexistent
    -o "Dir::State::Lists=$apt/lists" -o "Dir::Cache=$apt" -o "Dir::Cache::Archives=$apt/archives"
    -o APT::Sandbox::User=root)
  apt-get "${A[@]}" -qq update
  local pkg
  pkg=$(apt-cache "${A[@]}" depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\)$/\1/p' | head -n1)
  [ -n "$pkg" ] || { echo "fetch-kernels: no kernel package behind linux-image-amd64 in $suite" >&2; exit 1; }
  (cd "$apt/archives" && apt-get "${A[@]}" -qq download "$pkg")
  dpkg-deb -x "$apt"/archives/"$pkg"_*.deb "$dir.tmp"
  local ver=${pkg#linux-image-}
  # dpkg-deb -x does not run depmod; modprobe --show-depends needs modules.dep.
  depmod -b "$dir.tmp" "$ver"
  echo "$ver" >"$dir.tmp/release"
  rm -rf "$dir" "$apt"
  mv "$dir.tmp" "$dir"
  echo "fetch-kernels: $1 = $ver" >&2
}

mkdir -p "$CACHE"
fetch k6.1 bookworm
fetch k6.12 bookworm-backports
