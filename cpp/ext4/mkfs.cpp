#include "ext4/mkfs.h"

#include <climits>
#include <cstring>

namespace obd::ext4 {

namespace {

constexpr uint32_t kBlockSize = 4096;
// Below this the group layout and journal sizing stop making sense.
constexpr uint64_t kMinBytes = 8ull << 20;

uint64_t fnv1a(const std::string& s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// The device must read as zeros where mkfs writes nothing (inode tables,
// journal): check cheaply, and discard the whole device only when it may
// hold data.
Status ensure_zeroed(File& dev, uint64_t size) {
  auto ext = dev.data_extents(0);
  if (ext.is_ok()) {
    bool any = false;
    for (const auto& e : *ext)
      if (e.off < size) any = true;
    if (!any) return Status::ok();
  }
  return dev.punch_hole(0, size).with_context("discarding the device before mkfs");
}

Status make_lost_found(Fs& f) {
  ext2_filsys fs = f.get();
  // fsck wants lost+found private and pre-grown, so it can relink files
  // without allocating.
  int saved = fs->umask;
  fs->umask = 077;
  errcode_t err = ext2fs_mkdir(fs, EXT2_ROOT_INO, 0, "lost+found");
  fs->umask = saved;
  if (err) return f.error(err, "creating lost+found");
  ext2_ino_t ino;
  err = ext2fs_lookup(fs, EXT2_ROOT_INO, "lost+found", 10, nullptr, &ino);
  if (err) return f.error(err, "looking up lost+found");
  for (;;) {
    struct ext2_inode inode;
    err = ext2fs_read_inode(fs, ino, &inode);
    if (err) return f.error(err, "reading lost+found");
    if (EXT2_I_SIZE(&inode) >= 16384) break;
    err = ext2fs_expand_dir(fs, ino);
    if (err) return f.error(err, "growing lost+found");
  }
  return Status::ok();
}

}  // namespace

void derive_ids(const std::string& seed, uint8_t uuid[16], uint8_t hash_seed[16]) {
  uint64_t x = fnv1a(seed, 0xcbf29ce484222325ull);
  uint8_t out[32];
  for (int i = 0; i < 4; ++i) {
    uint64_t v = splitmix(x);
    std::memcpy(out + 8 * i, &v, 8);
  }
  std::memcpy(uuid, out, 16);
  std::memcpy(hash_seed, out + 16, 16);
  uuid[6] = (uuid[6] & 0x0f) | 0x40;  // a well-formed version 4 / RFC 4122 uuid
  uuid[8] = (uuid[8] & 0x3f) | 0x80;
}

Status mkfs(FilePtr dev, const MkfsOptions& opts) {
  OBD_ASSIGN_OR_RETURN(uint64_t dev_size, dev->size());
  uint64_t size = opts.size ? opts.size : dev_size;
  if (size > dev_size)
    return Status(Code::kEINVAL, "mkfs: size " + std::to_string(size) + " exceeds the device (" +
                                     std::to_string(dev_size) + " bytes)");
  if (size < kMinBytes)
    return Status(Code::kEINVAL, "mkfs: device " + dev->name() + " is too small for ext4 (" +
                                     std::to_string(size) + " bytes, need " + std::to_string(kMinBytes) + ")");
  if (opts.inode_size != 128 && opts.inode_size != 256 && opts.inode_size != 512 && opts.inode_size != 1024)
    return Status(Code::kEINVAL, "mkfs: inode size must be 128, 256, 512 or 1024");
  if (opts.bytes_per_inode < 1024 || opts.bytes_per_inode > (64u << 20))
    return Status(Code::kEINVAL, "mkfs: bytes per inode out of range");
  if (opts.label.size() > 16) return Status(Code::kEINVAL, "mkfs: label longer than 16 bytes");
  OBD_TRY(ensure_zeroed(*dev, size));

  struct ext2_super_block param;
  std::memset(&param, 0, sizeof(param));
  param.s_rev_level = EXT2_DYNAMIC_REV;
  // Upstream's base-layer feature set, plus a journal.
  ext2fs_set_feature_64bit(&param);
  ext2fs_set_feature_sparse_super(&param);
  ext2fs_set_feature_sparse_super2(&param);
  ext2fs_set_feature_filetype(&param);
  ext2fs_set_feature_resize_inode(&param);
  ext2fs_set_feature_dir_index(&param);
  ext2fs_set_feature_xattr(&param);
  ext2fs_set_feature_dir_nlink(&param);
  ext2fs_set_feature_large_file(&param);
  ext2fs_set_feature_huge_file(&param);
  ext2fs_set_feature_flex_bg(&param);
  ext2fs_set_feature_extents(&param);
  ext2fs_set_feature_extra_isize(&param);
  if (opts.journal) ext2fs_set_feature_journal(&param);
  param.s_log_block_size = param.s_log_cluster_size = 2;  // 4 KiB
  param.s_desc_size = EXT2_MIN_DESC_SIZE_64BIT;
  param.s_log_groups_per_flex = 4;  // metadata of 16 groups packed together
  param.s_inode_size = uint16_t(opts.inode_size);
  uint64_t blocks = size / kBlockSize;
  ext2fs_blocks_count_set(&param, blocks);
  uint64_t inodes = size / opts.bytes_per_inode;
  param.s_inodes_count = uint32_t(std::min<uint64_t>(inodes, UINT_MAX));
  ext2fs_r_blocks_count_set(&param, blocks / 20);  // 5% reserved, as upstream
  // sparse_super2: backups in group 1 and the last group only.
  param.s_backup_bgs[0] = 1;
  param.s_backup_bgs[1] = ~0u;

  OBD_ASSIGN_OR_RETURN(auto f, Fs::initialize(dev, &param, opts.fs));
  ext2_filsys fs = f->get();
  struct ext2_super_block* sb = fs->super;
  uint32_t t = uint32_t(fs->now);
  sb->s_mkfs_time = sb->s_lastcheck = sb->s_wtime = t;
  sb->s_max_mnt_count = uint16_t(-1);
  sb->s_checkinterval = 0;
  std::string seed = opts.seed.empty() ? "overlaybd-mkfs:" + std::to_string(size) : opts.seed;
  derive_ids(seed, sb->s_uuid, reinterpret_cast<uint8_t*>(sb->s_hash_seed));
  sb->s_def_hash_version = EXT2_HASH_HALF_MD4;
  // The kernel needs to know how this platform's char hashed names.
  sb->s_flags |= (char(0xff) < 0) ? EXT2_FLAGS_SIGNED_HASH : EXT2_FLAGS_UNSIGNED_HASH;
  sb->s_default_mount_opts = EXT2_DEFM_XATTR_USER | EXT2_DEFM_ACL;
  std::memset(sb->s_volume_name, 0, sizeof(sb->s_volume_name));
  std::memcpy(sb->s_volume_name, opts.label.data(), opts.label.size());
  fs->stride = sb->s_raid_stride;

  errcode_t err = ext2fs_allocate_tables(fs);
  if (err) return f->error(err, "allocating group tables");
  err = ext2fs_mkdir(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, nullptr);
  if (err) return f->error(err, "creating the root directory");
  OBD_TRY(make_lost_found(*f));
  // Inodes below s_first_ino are reserved; mark them used. Inode 1 holds
  // the (empty) bad block list, which fsck expects to find initialised.
  for (ext2_ino_t i = EXT2_ROOT_INO + 1; i < EXT2_FIRST_INODE(sb); ++i) ext2fs_inode_alloc_stats2(fs, i, +1, 0);
  ext2fs_inode_alloc_stats2(fs, EXT2_BAD_INO, +1, 0);
  ext2fs_mark_ib_dirty(fs);
  err = ext2fs_update_bb_inode(fs, nullptr);
  if (err) return f->error(err, "writing the bad block inode");
  err = ext2fs_create_resize_inode(fs);
  if (err) return f->error(err, "creating the resize inode");
  if (opts.journal) {
    struct ext2fs_journal_params jp;
    err = ext2fs_get_journal_params(&jp, fs);
    if (err) return f->error(err, "sizing the journal");
    // LAZYINIT: the device already reads as zeros; writing 64-1024 MiB of
    // zeros into the layer would only bloat it.
    err = ext2fs_add_journal_inode3(fs, &jp, ~0ull, EXT2_MKJOURNAL_LAZYINIT | EXT2_MKJOURNAL_NO_MNT_CHECK);
    if (err) return f->error(err, "creating the journal");
  }
  return f->close();
}

}  // namespace obd::ext4
