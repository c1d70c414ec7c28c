# One line per entry of the tree under $1 (type, mode, owner, path, link
# target), then the sha256 of every regular file, sorted: the same listing
# on the host's extracted tar and on the guest's mounted device. Hashed 8
# files at a time, so the device sees a deep queue.
tree_list() {
  (cd "$1" && find . -mindepth 1 -path ./lost+found -prune -o -printf '%y %m %U:%G %P -> %l\n' | LC_ALL=C sort) || return 1
  (cd "$1" && find . -mindepth 1 -path ./lost+found -prune -o -type f -print0 | xargs -0 -P 8 -n 32 sha256sum | LC_ALL=C sort -k2) || return 1
}
