#!/bin/bash
# tree-listing.sh DIR: one sorted line per entry of the tree under DIR
# (lost+found left out): path, type, mode, owner, and for non-directories
# size and link target, then a sha256 line per regular file. Native tools
# only, so it stays quick in a TCG guest; the ublk test runs it on the
# mounted device and on the tree merged from the source tar, and diffs.
set -euo pipefail
cd "$1"
{
  find . -xdev -path ./lost+found -prune -o -type d -printf '%p\td\t%m\t%U\t%G\n'
  find . -xdev -path ./lost+found -prune -o ! -type d -printf '%p\t%y\t%m\t%U\t%G\t%s\t%l\n'
  find . -xdev -path ./lost+found -prune -o -type f -print0 | xargs -0 -r sha256sum | sed 's/^\([0-9a-f]*\)  \(.*\)$/\2\tsha256\t\1/'
} | LC_ALL=C sort
