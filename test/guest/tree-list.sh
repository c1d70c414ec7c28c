# One line per entry of the tree under $1 (type, mode, owner, path, link
# target, sha256 of regular files), sorted: the same listing on the host's
# extracted tar and on the guest's mounted device.
tree_list() {
  (cd "$1" && find . -mindepth 1 -path ./lost+found -prune -o -printf '%y %m %U:%G %P -> %l\n' | sort) || return 1
  (cd "$1" && find . -mindepth 1 -path ./lost+found -prune -o -type f -print0 | sort -z | xargs -0 sha256sum) || return 1
}
