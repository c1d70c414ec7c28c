#include "ext4/dir_block.h"

#include <cstring>

namespace obd::ext4 {

namespace {
Status corrupt(ext2_ino_t dir, uint64_t lblk, uint32_t off) {
  return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " is corrupt (block " +
                                       std::to_string(lblk) + ", offset " + std::to_string(off) + ")");
}
}  // namespace

void put_dirent(const Fs& fs, char* at, ext2_ino_t ino, const std::string& name, uint8_t ftype, uint32_t rec_len) {
  auto* de = reinterpret_cast<ext2_dir_entry*>(at);
  de->inode = ino;
  ext2fs_dirent_set_name_len(de, int(name.size()));
  ext2fs_dirent_set_file_type(de, ext2fs_has_feature_filetype(fs.get()->super) ? ftype : 0);
  (void)ext2fs_set_rec_len(fs.get(), rec_len, de);
  std::memcpy(de->name, name.data(), name.size());
  // Zero the padding: the same entries give the same bytes.
  std::memset(de->name + name.size(), 0, dirent_size(name.size()) - 8 - name.size());
}

Status walk_dir_block(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf,
                      const std::function<void(uint32_t, ext2_dir_entry*)>& fn) {
  const uint32_t bs = fs.get()->blocksize;
  for (uint32_t off = 0; off < bs;) {
    if (bs - off < 8) return corrupt(dir, lblk, off);
    auto* de = reinterpret_cast<ext2_dir_entry*>(buf + off);
    unsigned int rec_len = 0;
    if (ext2fs_get_rec_len(fs.get(), de, &rec_len) || rec_len < 8 || rec_len % 4 || rec_len > bs - off ||
        dirent_size(ext2fs_dirent_name_len(de)) > rec_len)
      return corrupt(dir, lblk, off);
    fn(off, de);
    off += rec_len;
  }
  return Status::ok();
}

Result<int> insert_dirent(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf, const std::string& name,
                          ext2_ino_t ino, uint8_t ftype) {
  const uint32_t need = dirent_size(name.size());
  int at = -1;
  uint32_t at_rec = 0, at_used = 0;
  OBD_TRY(walk_dir_block(fs, dir, lblk, buf, [&](uint32_t off, ext2_dir_entry* de) {
    if (at >= 0) return;
    unsigned int rec_len = 0;
    (void)ext2fs_get_rec_len(fs.get(), de, &rec_len);
    uint32_t used = de->inode ? dirent_size(ext2fs_dirent_name_len(de)) : 0;
    if (rec_len - used >= need) {
      at = int(off);
      at_rec = rec_len;
      at_used = used;
    }
  }));
  if (at < 0) return -1;
  if (at_used == 0) {
    // An unused record: the new entry takes all of it.
    put_dirent(fs, buf + at, ino, name, ftype, at_rec);
    return at;
  }
  // Split a used record: it keeps what it needs, the rest is the new one.
  (void)ext2fs_set_rec_len(fs.get(), at_used, reinterpret_cast<ext2_dir_entry*>(buf + at));
  put_dirent(fs, buf + at + at_used, ino, name, ftype, at_rec - at_used);
  return int(at + at_used);
}

Status remove_dirent(const Fs& fs, ext2_ino_t dir, uint64_t lblk, char* buf, uint32_t off) {
  int prev = -1;
  bool found = false;
  OBD_TRY(walk_dir_block(fs, dir, lblk, buf, [&](uint32_t o, ext2_dir_entry*) {
    if (found) return;
    if (o == off) {
      found = true;
      return;
    }
    prev = int(o);
  }));
  if (!found) return corrupt(dir, lblk, off);
  auto* de = reinterpret_cast<ext2_dir_entry*>(buf + off);
  if (prev < 0) {
    // The first record of a block has no predecessor: mark it unused.
    de->inode = 0;
    return Status::ok();
  }
  auto* pde = reinterpret_cast<ext2_dir_entry*>(buf + prev);
  unsigned int a = 0, b = 0;
  (void)ext2fs_get_rec_len(fs.get(), pde, &a);
  (void)ext2fs_get_rec_len(fs.get(), de, &b);
  (void)ext2fs_set_rec_len(fs.get(), a + b, pde);
  return Status::ok();
}

Result<blk64_t> dir_block_addr(const Fs& fs, ext2_ino_t dir, InodeBuf& b, uint64_t lblk) {
  blk64_t pblk = 0;
  int flags = 0;
  errcode_t err = ext2fs_bmap2(fs.get(), dir, b.small(), nullptr, 0, lblk, &flags, &pblk);
  if (err) return fs.error(err, "mapping block " + std::to_string(lblk) + " of directory inode " + std::to_string(dir));
  if (flags & BMAP_RET_UNINIT) return blk64_t(0);
  return pblk;
}

Status read_dir_block(const Fs& fs, ext2_ino_t dir, blk64_t pblk, char* buf) {
  errcode_t err = ext2fs_read_dir_block4(fs.get(), pblk, buf, 0, dir);
  return err ? fs.error(err, "reading a block of directory inode " + std::to_string(dir)) : Status::ok();
}

Status write_dir_block(const Fs& fs, ext2_ino_t dir, blk64_t pblk, char* buf) {
  errcode_t err = ext2fs_write_dir_block4(fs.get(), pblk, buf, 0, dir);
  return err ? fs.error(err, "writing a block of directory inode " + std::to_string(dir)) : Status::ok();
}

Status grow_dir(const Fs& fs, ext2_ino_t dir, InodeBuf& b, uint64_t count) {
  ext2_filsys f = fs.get();
  uint64_t first = EXT2_I_SIZE(b.small()) / f->blocksize;
  std::string what = "growing directory inode " + std::to_string(dir);
  errcode_t err = ext2fs_inode_size_set(f, b.small(), (first + count) * f->blocksize);
  if (err) return fs.error(err, what);
  err = ext2fs_fallocate(f, EXT2_FALLOCATE_FORCE_INIT, dir, b.small(), ~0ull, first, count);
  if (err) {
    (void)ext2fs_inode_size_set(f, b.small(), first * f->blocksize);
    (void)write_inode(fs, dir, b);
    return fs.error(err, what);
  }
  return write_inode(fs, dir, b);
}

}  // namespace obd::ext4
