// Path resolution inside the filesystem, as containerd's RootPath does it:
// symlinks met on the way are followed, an absolute target restarts at the
// filesystem root, ".." never climbs above the root, and after 255 links the
// walk gives up. Nothing can point outside the image.
#pragma once
#include <ext2fs/ext2fs.h>

#include <string>
#include <vector>

#include "common/status.h"
#include "ext4/fs.h"
#include "ext4/tree.h"

namespace obd::ext4 {

struct Resolved {
  // The path from the root with symlinks replaced, component by component.
  std::vector<std::string> comps;
  // Inodes of the leading components that exist (comps.size() when all do).
  std::vector<Child> found;
  // A non-directory sits where a directory is needed; the rest is lexical.
  bool blocked = false;

  bool exists() const { return !blocked && found.size() == comps.size(); }
  // The last component's entry; the root when comps is empty.
  Child leaf() const;
  // comps joined with '/', the key of this path for bookkeeping.
  std::string key() const;
};

// Resolves `path` ('/'-separated, relative to the root). With follow_last,
// a symlink in the last component is followed too (used for directories).
Result<Resolved> resolve_path(const Fs& fs, Tree& tree, const std::string& path, bool follow_last);

std::vector<std::string> split_path(const std::string& path);

}  // namespace obd::ext4
