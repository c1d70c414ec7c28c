// Tree: the directory entries of the filesystem as the apply sees them.
// libext2fs looks names up by scanning directory blocks, which makes a layer
// with large directories quadratic; each directory is listed once instead,
// and every link/unlink done through Tree keeps that listing current.
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/status.h"
#include "ext4/fs.h"

namespace obd::ext4 {

struct Child {
  ext2_ino_t ino = 0;
  uint8_t ftype = EXT2_FT_UNKNOWN;  // EXT2_FT_*
  bool is_dir() const { return ftype == EXT2_FT_DIR; }
};

class Tree {
 public:
  explicit Tree(const Fs& fs) : fs_(fs) {}

  // The entry `name` of directory `dir`, or nullptr when there is none.
  Result<const Child*> lookup(ext2_ino_t dir, const std::string& name);
  // All entries of `dir` but "." and "..", sorted by name (deterministic).
  Result<std::vector<std::pair<std::string, Child>>> children(ext2_ino_t dir);
  // Adds an entry (growing the directory when full). The name must be new.
  Status link(ext2_ino_t dir, const std::string& name, Child c);
  Status unlink(ext2_ino_t dir, const std::string& name);
  // Drops the listing of a directory that was removed.
  void forget(ext2_ino_t dir) { dirs_.erase(dir); }

 private:
  using Listing = std::unordered_map<std::string, Child>;
  Result<Listing*> listing(ext2_ino_t dir);

  const Fs& fs_;
  std::unordered_map<ext2_ino_t, Listing> dirs_;
};

}  // namespace obd::ext4
