// Tree: the directory entries of the filesystem as the apply sees them.
// libext2fs looks names up, adds and removes them by scanning directory
// blocks, which makes a layer with large directories quadratic. Here each
// directory is listed once and every name's block and offset kept, so a
// lookup is a map probe, a removal edits one block and an addition fills
// the last block or appends one. A directory changed this way loses its
// hash index until finish() rebuilds it (htree.h) once per layer.
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <set>
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
  void forget(ext2_ino_t dir) {
    dirs_.erase(dir);
    changed_.erase(dir);
  }
  // Rewrites every directory changed since the start that spans more than
  // one block: compacted, and hash-indexed when the names need more than
  // one block. Call once, when the layer is applied.
  Status finish();

 private:
  struct Entry {
    Child c;
    uint64_t lblk = 0;  // where its record is
    uint32_t off = 0;
  };
  struct Listing {
    std::unordered_map<std::string, Entry> names;
    ext2_ino_t parent = 0;  // ".."
    // Left to libext2fs: inline-data directories, checksummed filesystems.
    bool by_ext2fs = false;
  };
  Result<Listing*> listing(ext2_ino_t dir);
  Status read_listing(ext2_ino_t dir, Listing& l);
  // Clears the hash index of a directory about to change (once).
  Status mark_changed(ext2_ino_t dir);
  Status add_entry(ext2_ino_t dir, const std::string& name, Child c, Entry* at);
  Status remove_entry(ext2_ino_t dir, const std::string& name, const Entry& at);

  const Fs& fs_;
  std::unordered_map<ext2_ino_t, Listing> dirs_;
  std::set<ext2_ino_t> changed_;  // ordered: finish() allocates deterministically
};

}  // namespace obd::ext4
