// Hash-indexed (htree) directories, built whole as e2fsck -D builds them:
// the entries sorted by name hash and packed into leaf blocks, a root block
// (".", ".." and the index) over them, and one level of index nodes when the
// root cannot point at every leaf. The kernel then finds a name by reading
// two or three blocks instead of the whole directory.
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "ext4/fs.h"

namespace obd::ext4 {

struct DirName {
  std::string name;
  ext2_ino_t ino = 0;
  uint8_t ftype = 0;  // EXT2_FT_*
};

// Rewrites directory `dir` (whose ".." is `parent`) to hold exactly
// `entries`: one unindexed block when they fit in one, else an htree.
// Blocks no longer needed are freed, missing ones allocated. The output
// depends only on the entries and the filesystem's hash seed.
Status rewrite_dir(const Fs& fs, ext2_ino_t dir, ext2_ino_t parent, std::vector<DirName> entries);

}  // namespace obd::ext4
