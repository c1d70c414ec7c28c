#include "ext4/inode.h"

#include <cstring>

namespace obd::ext4 {

namespace {

constexpr uint16_t kLinkMax = 65000;  // above this a directory counts as "many" (dir_nlink)

// ext4's 34-bit seconds: low 32 bits in the base field, two epoch bits and
// the nanoseconds in the _extra field.
void encode_time(int64_t sec, uint32_t nsec, __u32* base, __u32* extra) {
  *base = uint32_t(sec);
  uint32_t epoch = uint32_t((sec - int64_t(int32_t(uint32_t(sec)))) >> 32) & 3u;
  *extra = (std::min<uint32_t>(nsec, 999999999u) << 2) | epoch;
}

}  // namespace

InodeBuf::InodeBuf(const Fs& fs) : buf_(std::max<size_t>(EXT2_INODE_SIZE(fs.get()->super), sizeof(ext2_inode_large))) {}

void InodeBuf::clear() { std::memset(buf_.data(), 0, buf_.size()); }

Status read_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  errcode_t err = ext2fs_read_inode_full(fs.get(), ino, b.small(), b.size());
  return err ? fs.error(err, "reading inode " + std::to_string(ino)) : Status::ok();
}

Status write_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  errcode_t err = ext2fs_write_inode_full(fs.get(), ino, b.small(), b.size());
  return err ? fs.error(err, "writing inode " + std::to_string(ino)) : Status::ok();
}

uint8_t ftype_of_mode(uint32_t mode) {
  switch (mode & LINUX_S_IFMT) {
    case LINUX_S_IFREG: return EXT2_FT_REG_FILE;
    case LINUX_S_IFDIR: return EXT2_FT_DIR;
    case LINUX_S_IFLNK: return EXT2_FT_SYMLINK;
    case LINUX_S_IFCHR: return EXT2_FT_CHRDEV;
    case LINUX_S_IFBLK: return EXT2_FT_BLKDEV;
    case LINUX_S_IFIFO: return EXT2_FT_FIFO;
    case LINUX_S_IFSOCK: return EXT2_FT_SOCK;
    default: return EXT2_FT_UNKNOWN;
  }
}

void apply_meta(InodeBuf& b, const Meta& m) {
  ext2_inode_large* in = b.large();
  // A symlink's permissions are always 0777 (lchmod does not exist on Linux).
  if (!LINUX_S_ISLNK(in->i_mode)) in->i_mode = uint16_t((in->i_mode & LINUX_S_IFMT) | (m.perm & 07777));
  in->i_uid = uint16_t(m.uid & 0xffff);
  ext2fs_set_i_uid_high(*in, uint16_t(m.uid >> 16));
  in->i_gid = uint16_t(m.gid & 0xffff);
  ext2fs_set_i_gid_high(*in, uint16_t(m.gid >> 16));
  encode_time(m.mtime_sec, m.mtime_nsec, &in->i_mtime, &in->i_mtime_extra);
  in->i_atime = in->i_ctime = in->i_mtime;
  in->i_atime_extra = in->i_ctime_extra = in->i_mtime_extra;
}

Result<ext2_ino_t> new_inode(const Fs& fs, ext2_ino_t parent, uint32_t type, const Meta& m, InodeBuf& b) {
  ext2_filsys f = fs.get();
  ext2_ino_t ino = 0;
  errcode_t err = ext2fs_new_inode(f, parent, int(type), nullptr, &ino);
  if (err) return fs.error(err, "allocating an inode");
  ext2fs_inode_alloc_stats2(f, ino, +1, LINUX_S_ISDIR(type) ? 1 : 0);
  b.clear();
  ext2_inode_large* in = b.large();
  in->i_mode = uint16_t(type & LINUX_S_IFMT);
  in->i_links_count = 1;
  if (b.size() > EXT2_GOOD_OLD_INODE_SIZE)
    in->i_extra_isize = uint16_t(sizeof(ext2_inode_large) - EXT2_GOOD_OLD_INODE_SIZE);
  apply_meta(b, m);
  // Birth time is not in the tar: a fixed value keeps images reproducible.
  in->i_crtime = uint32_t(f->now);
  return ino;
}

static Status free_extent_blocks(const Fs& fs, ext2_ino_t ino, InodeBuf& b);

void abandon_inode(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  // The blocks a body mapped (directory block, symlink block, extent tree):
  // the inode was never written, so its extent tree is only in `b`.
  if (b.large()->i_flags & EXT4_EXTENTS_FL) (void)free_extent_blocks(fs, ino, b);
  ext2fs_inode_alloc_stats2(fs.get(), ino, -1, LINUX_S_ISDIR(b.large()->i_mode) ? 1 : 0);
}

Status init_extent_header(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  ext2_extent_handle_t h;
  // Opening a handle on an inode with an empty i_block writes an empty
  // extent header there and sets EXT4_EXTENTS_FL.
  errcode_t err = ext2fs_extent_open2(fs.get(), ino, b.small(), &h);
  if (err) return fs.error(err, "initializing the extent tree of inode " + std::to_string(ino));
  ext2fs_extent_free(h);
  return Status::ok();
}

// Allocates one block near the inode and maps it as logical block 0.
static Result<blk64_t> map_first_block(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  ext2_filsys f = fs.get();
  // The extent header first: a failure then has allocated nothing.
  OBD_TRY(init_extent_header(fs, ino, b));
  blk64_t goal = ext2fs_find_inode_goal(f, ino, b.small(), 0);
  blk64_t blk = 0;
  errcode_t err = ext2fs_new_block2(f, goal, nullptr, &blk);
  if (err) return fs.error(err, "allocating a block for inode " + std::to_string(ino));
  ext2fs_block_alloc_stats2(f, blk, +1);
  ext2_extent_handle_t h;
  err = ext2fs_extent_open2(f, ino, b.small(), &h);
  if (!err) {
    err = ext2fs_extent_set_bmap(h, 0, blk, 0);
    ext2fs_extent_free(h);
  }
  if (err) {
    ext2fs_block_alloc_stats2(f, blk, -1);
    return fs.error(err, "mapping a block of inode " + std::to_string(ino));
  }
  ext2fs_iblk_set(f, b.small(), 1);
  return blk;
}

Status init_dir_body(const Fs& fs, ext2_ino_t ino, ext2_ino_t parent, InodeBuf& b) {
  ext2_filsys f = fs.get();
  char* block = nullptr;
  errcode_t err = ext2fs_new_dir_block(f, ino, parent, &block);
  if (err) return fs.error(err, "building a directory block");
  auto blk = map_first_block(fs, ino, b);
  if (!blk) {
    ext2fs_free_mem(&block);
    return blk.status();
  }
  err = ext2fs_write_dir_block4(f, *blk, block, 0, ino);
  ext2fs_free_mem(&block);
  if (err) return fs.error(err, "writing a directory block");
  b.large()->i_size = f->blocksize;
  b.large()->i_links_count = 2;
  return Status::ok();
}

Status init_symlink_body(const Fs& fs, ext2_ino_t ino, InodeBuf& b, const std::string& target) {
  ext2_filsys f = fs.get();
  if (target.empty()) return Status(Code::kTAR_BAD_HEADER, "symlink with an empty target");
  if (target.size() >= f->blocksize || target.find('\0') != std::string::npos)
    return Status(Code::kTAR_BAD_HEADER, "symlink target too long or not a string (" +
                                             std::to_string(target.size()) + " bytes)");
  ext2_inode_large* in = b.large();
  if (target.size() < sizeof(in->i_block)) {
    // Fast symlink: the target lives in i_block.
    std::memcpy(in->i_block, target.data(), target.size());
  } else {
    OBD_ASSIGN_OR_RETURN(blk64_t blk, map_first_block(fs, ino, b));
    std::vector<char> buf(f->blocksize, 0);
    std::memcpy(buf.data(), target.data(), target.size());
    errcode_t err = io_channel_write_blk64(f->io, blk, 1, buf.data());
    if (err) return fs.error(err, "writing a symlink block");
  }
  in->i_size = uint32_t(target.size());
  return Status::ok();
}

void set_rdev(InodeBuf& b, uint32_t major, uint32_t minor) {
  ext2_inode_large* in = b.large();
  // The kernel's old (8:8) encoding when it fits, else the new one.
  if (major < 256 && minor < 256) {
    in->i_block[0] = major * 256 + minor;
    in->i_block[1] = 0;
  } else {
    in->i_block[0] = 0;
    in->i_block[1] = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffu) << 12);
  }
}

Result<std::string> read_symlink(const Fs& fs, ext2_ino_t ino) {
  ext2_filsys f = fs.get();
  InodeBuf b(fs);
  OBD_TRY(read_inode(fs, ino, b));
  ext2_inode* in = b.small();
  uint64_t size = EXT2_I_SIZE(in);
  if (size == 0 || size >= f->blocksize)
    return Status(Code::kEXT4_ERROR, "symlink inode " + std::to_string(ino) + " has a bad size");
  std::vector<char> buf(f->blocksize, 0);
  if (in->i_flags & EXT4_INLINE_DATA_FL) {
    size_t got = 0;
    errcode_t err = ext2fs_inline_data_get(f, ino, in, buf.data(), &got);
    if (err) return fs.error(err, "reading symlink inode " + std::to_string(ino));
  } else if (ext2fs_is_fast_symlink(in)) {
    std::memcpy(buf.data(), in->i_block, size);
  } else {
    blk64_t pblk = 0;
    errcode_t err = ext2fs_bmap2(f, ino, in, nullptr, 0, 0, nullptr, &pblk);
    if (!err && pblk) err = io_channel_read_blk64(f->io, pblk, 1, buf.data());
    if (err || !pblk) return fs.error(err ? err : EXT2_ET_BAD_BLOCK_NUM, "reading symlink inode " + std::to_string(ino));
  }
  return std::string(buf.data(), size);
}

// Frees every block an extent-mapped inode holds: data and tree blocks.
// (ext2fs_punch fails with "Illegal block number" when an extent ends at
// the last block of the filesystem, which a full filesystem produces.)
static Status free_extent_blocks(const Fs& fs, ext2_ino_t ino, InodeBuf& b) {
  ext2_filsys f = fs.get();
  ext2_extent_handle_t h;
  errcode_t err = ext2fs_extent_open2(f, ino, b.small(), &h);
  if (err) return fs.error(err, "reading the extent tree of inode " + std::to_string(ino));
  std::vector<std::pair<blk64_t, uint64_t>> runs;
  struct ext2fs_extent ex;
  int op = EXT2_EXTENT_ROOT;
  while ((err = ext2fs_extent_get(h, op, &ex)) == 0) {
    op = EXT2_EXTENT_NEXT;
    if (ex.e_flags & EXT2_EXTENT_FLAGS_LEAF) {
      if (ex.e_len) runs.emplace_back(ex.e_pblk, ex.e_len);
    } else if (!(ex.e_flags & EXT2_EXTENT_FLAGS_SECOND_VISIT)) {
      runs.emplace_back(ex.e_pblk, 1);  // the child tree node
    }
  }
  ext2fs_extent_free(h);
  if (err != EXT2_ET_EXTENT_NO_NEXT && err != EXT2_ET_NO_CURRENT_NODE)
    return fs.error(err, "walking the extent tree of inode " + std::to_string(ino));
  blk64_t total = ext2fs_blocks_count(f->super);
  for (auto [blk, len] : runs) {
    if (blk < f->super->s_first_data_block || blk + len > total || blk + len < blk)
      return Status(Code::kEXT4_ERROR, "inode " + std::to_string(ino) + " maps blocks outside the filesystem");
    for (uint64_t i = 0; i < len; ++i) ext2fs_block_alloc_stats2(f, blk + i, -1);
  }
  // An empty tree: the inode no longer owns anything.
  std::memset(b.large()->i_block, 0, sizeof(b.large()->i_block));
  return init_extent_header(fs, ino, b);
}

Status drop_link(const Fs& fs, ext2_ino_t ino) {
  ext2_filsys f = fs.get();
  InodeBuf b(fs);
  OBD_TRY(read_inode(fs, ino, b));
  ext2_inode_large* in = b.large();
  bool is_dir = LINUX_S_ISDIR(in->i_mode);
  if (!is_dir && in->i_links_count > 1) {
    in->i_links_count--;
    return write_inode(fs, ino, b);
  }
  std::string what = "freeing inode " + std::to_string(ino);
  if (!ext2fs_inode_has_valid_blocks2(f, b.small())) {
    // Fast symlink, device, inline data: nothing mapped.
  } else if (b.large()->i_flags & EXT4_EXTENTS_FL) {
    OBD_TRY(free_extent_blocks(fs, ino, b));
  } else {
    errcode_t err = ext2fs_punch(f, ino, b.small(), nullptr, 0, ~0ull);
    if (err) return fs.error(err, what);
  }
  blk64_t ea = ext2fs_file_acl_block(f, b.small());
  if (ea) {
    __u32 count = 0;
    errcode_t err = ext2fs_adjust_ea_refcount3(f, ea, nullptr, -1, &count, ino);
    if (err) return fs.error(err, what);
    if (count == 0) ext2fs_block_alloc_stats2(f, ea, -1);
    ext2fs_file_acl_block_set(f, b.small(), 0);
  }
  in->i_links_count = 0;
  in->i_dtime = uint32_t(f->now);
  ext2fs_iblk_set(f, b.small(), 0);
  OBD_TRY(write_inode(fs, ino, b));
  ext2fs_inode_alloc_stats2(f, ino, -1, is_dir ? 1 : 0);
  return Status::ok();
}

Status adjust_dir_links(const Fs& fs, ext2_ino_t dir, int delta) {
  InodeBuf b(fs);
  OBD_TRY(read_inode(fs, dir, b));
  ext2_inode_large* in = b.large();
  if (delta > 0) {
    if (in->i_links_count == 1 || in->i_links_count >= kLinkMax)
      in->i_links_count = 1;
    else
      in->i_links_count++;
  } else if (in->i_links_count > 2) {
    in->i_links_count--;
  }
  return write_inode(fs, dir, b);
}

}  // namespace obd::ext4
