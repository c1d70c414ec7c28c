// Directory blocks handled as bytes: the entries of one block, a name added
// where the block has room, one taken out by its offset. Each step touches
// one block, where libext2fs's ext2fs_link/ext2fs_unlink scan the whole
// directory (quadratic over a layer that fills a large one).
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <functional>
#include <string>

#include "common/status.h"
#include "ext4/fs.h"
#include "ext4/inode.h"

namespace obd::ext4 {

// The record length an entry whose name has `len` bytes needs.
inline uint32_t dirent_size(size_t len) { return uint32_t((8 + len + 3) & ~size_t(3)); }

// Fills the entry at `at`: inode, name, type (when the fs has the filetype
// feature) and record length.
void put_dirent(const Fs& fs, char* at, ext2_ino_t ino, const std::string& name, uint8_t ftype, uint32_t rec_len);

// Calls fn(offset, entry) for every record of the block, used or not, after
// checking that it lies inside the block; a bad record fails as corrupt.
Status walk_dir_block(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf,
                      const std::function<void(uint32_t, ext2_dir_entry*)>& fn);

// Puts the entry into the first gap of the block large enough for it;
// returns its offset, or -1 when the block is full.
Result<int> insert_dirent(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf, const std::string& name,
                          ext2_ino_t ino, uint8_t ftype);

// Takes out the entry at `off` (its space joins the entry before it).
Status remove_dirent(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf, uint32_t off);

// Physical block of a directory's logical block; 0 for a hole.
Result<blk64_t> dir_block_addr(const Fs& fs, ext2_ino_t dir, InodeBuf& b, uint64_t lblk);
Status read_dir_block(const Fs& fs, ext2_ino_t dir, blk64_t pblk, char* buf);
Status write_dir_block(const Fs& fs, ext2_ino_t dir, blk64_t pblk, char* buf);

// Maps `count` more blocks at the end of the directory and grows its size;
// the caller writes their contents. `b` (the directory inode) is written.
Status grow_dir(const Fs& fs, ext2_ino_t dir, InodeBuf& b, uint64_t count);

}  // namespace obd::ext4
