// Inode creation, metadata and release: the pieces the layer apply builds
// entries from. Inodes are written whole (the on-disk inode size, zeroed
// first) so a reused slot never keeps stale in-inode xattrs.
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "ext4/fs.h"

namespace obd::ext4 {

// What a tar header says about an inode.
struct Meta {
  uint32_t perm = 0;  // 07777
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
};

// A full on-disk-size inode.
class InodeBuf {
 public:
  explicit InodeBuf(const Fs& fs);
  ext2_inode_large* large() { return reinterpret_cast<ext2_inode_large*>(buf_.data()); }
  ext2_inode* small() { return reinterpret_cast<ext2_inode*>(buf_.data()); }
  void clear();
  int size() const { return int(buf_.size()); }

 private:
  std::vector<uint8_t> buf_;
};

Status read_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b);
Status write_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b);

// Directory entry file type (EXT2_FT_*) of an inode mode.
uint8_t ftype_of_mode(uint32_t mode);

// Sets permission bits, owner and times (atime = ctime = mtime).
void apply_meta(InodeBuf& b, const Meta& m);

// Allocates an inode number near `parent` and fills `b` with a fresh inode
// of `mode` (type | perm) carrying `m`; nothing is written yet.
Result<ext2_ino_t> new_inode(const Fs& fs, ext2_ino_t parent, uint32_t type, const Meta& m, InodeBuf& b);
// After a failed create of the never-written inode in `b`: frees the blocks
// its body mapped and marks the inode free again.
void abandon_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b);

// Type-specific bodies for a fresh inode in `b` (then write_inode).
Status init_dir_body(const Fs& fs, ext2_ino_t ino, ext2_ino_t parent, InodeBuf& b);
Status init_symlink_body(const Fs& fs, ext2_ino_t ino, InodeBuf& b, const std::string& target);
Status init_extent_header(const Fs& fs, ext2_ino_t ino, InodeBuf& b);
void set_rdev(InodeBuf& b, uint32_t major, uint32_t minor);

// The target of a symlink inode.
Result<std::string> read_symlink(const Fs& fs, ext2_ino_t ino);

// Drops one link; frees blocks, xattr block and the inode at zero links.
// A directory is freed outright (its entries must be gone already).
Status drop_link(const Fs& fs, ext2_ino_t ino);
// Changes a directory's link count by +1 or -1 (subdirectory added/removed),
// with dir_nlink's "1 means many" rule.
Status adjust_dir_links(const Fs& fs, ext2_ino_t dir, int delta);

}  // namespace obd::ext4
