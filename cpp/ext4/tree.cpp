#include "ext4/tree.h"

#include <algorithm>

#include "ext4/dir_block.h"
#include "ext4/htree.h"
#include "ext4/inode.h"

namespace obd::ext4 {

namespace {
bool is_dot(const char* name, int len) {
  return (len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.');
}

struct ListCtx {
  std::unordered_map<std::string, Child>* out;
};

int list_cb(ext2_ino_t, int, struct ext2_dir_entry* de, int, int, char*, void* priv) {
  auto* ctx = static_cast<ListCtx*>(priv);
  int len = ext2fs_dirent_name_len(de);
  if (is_dot(de->name, len)) return 0;
  Child c;
  c.ino = de->inode;
  c.ftype = uint8_t(ext2fs_dirent_file_type(de));
  (*ctx->out)[std::string(de->name, size_t(len))] = c;
  return 0;
}
}  // namespace

Status Tree::read_listing(ext2_ino_t dir, Listing& l) {
  ext2_filsys fs = fs_.get();
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, dir, b));
  // Inline directories are small; checksummed blocks need a tail record
  // this code does not write. Both stay with libext2fs.
  if ((b.large()->i_flags & EXT4_INLINE_DATA_FL) || ext2fs_has_feature_metadata_csum(fs->super)) {
    l.by_ext2fs = true;
    std::unordered_map<std::string, Child> kids;
    ListCtx ctx{&kids};
    errcode_t err = ext2fs_dir_iterate2(fs, dir, 0, nullptr, list_cb, &ctx);
    if (err) return fs_.error(err, "listing directory inode " + std::to_string(dir));
    for (auto& [name, c] : kids) l.names[name] = Entry{c, 0, 0};
    return Status::ok();
  }
  const uint64_t blocks = EXT2_I_SIZE(b.small()) / fs->blocksize;
  std::vector<char> buf(fs->blocksize);
  for (uint64_t lblk = 0; lblk < blocks; ++lblk) {
    OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs_, dir, b, lblk));
    if (!pblk) continue;
    OBD_TRY(read_dir_block(fs_, dir, pblk, buf.data()));
    OBD_TRY(walk_dir_block(fs_, dir, lblk, buf.data(), [&](uint32_t off, ext2_dir_entry* de) {
      if (!de->inode) return;
      int len = ext2fs_dirent_name_len(de);
      if (is_dot(de->name, len)) {
        if (len == 2) l.parent = de->inode;
        return;
      }
      Child c{de->inode, uint8_t(ext2fs_dirent_file_type(de))};
      l.names[std::string(de->name, size_t(len))] = Entry{c, lblk, off};
    }));
  }
  return Status::ok();
}

Result<Tree::Listing*> Tree::listing(ext2_ino_t dir) {
  auto it = dirs_.find(dir);
  if (it != dirs_.end()) return &it->second;
  Listing l;
  OBD_TRY(read_listing(dir, l));
  // Filesystems without the filetype feature leave the type out; read it.
  for (auto& [name, e] : l.names) {
    if (e.c.ftype != EXT2_FT_UNKNOWN) continue;
    InodeBuf b(fs_);
    OBD_TRY(read_inode(fs_, e.c.ino, b));
    e.c.ftype = ftype_of_mode(b.large()->i_mode);
  }
  return &dirs_.emplace(dir, std::move(l)).first->second;
}

Result<const Child*> Tree::lookup(ext2_ino_t dir, const std::string& name) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  auto it = l->names.find(name);
  return it == l->names.end() ? nullptr : &it->second.c;
}

Result<std::vector<std::pair<std::string, Child>>> Tree::children(ext2_ino_t dir) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  std::vector<std::pair<std::string, Child>> v;
  v.reserve(l->names.size());
  for (const auto& [name, e] : l->names) v.emplace_back(name, e.c);
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return v;
}

Status Tree::mark_changed(ext2_ino_t dir) {
  if (!changed_.insert(dir).second) return Status::ok();
  // Entries are about to move without the index knowing: drop it; finish()
  // builds a new one. An unindexed directory is valid meanwhile.
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, dir, b));
  if (!(b.large()->i_flags & EXT2_INDEX_FL)) return Status::ok();
  b.large()->i_flags &= ~EXT2_INDEX_FL;
  return write_inode(fs_, dir, b);
}

Status Tree::add_entry(ext2_ino_t dir, const std::string& name, Child c, Entry* at) {
  OBD_TRY(mark_changed(dir));
  ext2_filsys fs = fs_.get();
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, dir, b));
  const uint64_t blocks = EXT2_I_SIZE(b.small()) / fs->blocksize;
  std::vector<char> buf(fs->blocksize, 0);
  // Only the last block is tried: space freed further up waits for finish().
  if (blocks > 0) {
    OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs_, dir, b, blocks - 1));
    if (pblk) {
      OBD_TRY(read_dir_block(fs_, dir, pblk, buf.data()));
      OBD_ASSIGN_OR_RETURN(int off, insert_dirent(fs_, dir, blocks - 1, buf.data(), name, c.ino, c.ftype));
      if (off >= 0) {
        OBD_TRY(write_dir_block(fs_, dir, pblk, buf.data()));
        *at = Entry{c, blocks - 1, uint32_t(off)};
        return Status::ok();
      }
    }
  }
  OBD_TRY(grow_dir(fs_, dir, b, 1));
  OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs_, dir, b, blocks));
  if (!pblk) return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " did not grow");
  std::fill(buf.begin(), buf.end(), 0);
  put_dirent(fs_, buf.data(), c.ino, name, c.ftype, fs->blocksize);
  OBD_TRY(write_dir_block(fs_, dir, pblk, buf.data()));
  *at = Entry{c, blocks, 0};
  return Status::ok();
}

Status Tree::remove_entry(ext2_ino_t dir, const std::string& name, const Entry& at) {
  OBD_TRY(mark_changed(dir));
  InodeBuf b(fs_);
  OBD_TRY(read_inode(fs_, dir, b));
  OBD_ASSIGN_OR_RETURN(blk64_t pblk, dir_block_addr(fs_, dir, b, at.lblk));
  std::vector<char> buf(fs_.get()->blocksize);
  if (pblk) OBD_TRY(read_dir_block(fs_, dir, pblk, buf.data()));
  auto* de = reinterpret_cast<ext2_dir_entry*>(buf.data() + at.off);
  if (!pblk || de->inode != at.c.ino || size_t(ext2fs_dirent_name_len(de)) != name.size() ||
      name.compare(0, name.size(), de->name, name.size()) != 0)
    return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " no longer holds \"" + name +
                                         "\" where it was listed");
  OBD_TRY(remove_dirent(fs_, dir, at.lblk, buf.data(), at.off));
  return write_dir_block(fs_, dir, pblk, buf.data());
}

Status Tree::link(ext2_ino_t dir, const std::string& name, Child c) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  if (!l->by_ext2fs) {
    Entry e;
    Status s = add_entry(dir, name, c, &e);
    if (!s.is_ok()) return s.with_context("adding \"" + name + "\" to directory inode " + std::to_string(dir));
    l->names[name] = e;
    return Status::ok();
  }
  ext2_filsys fs = fs_.get();
  errcode_t err = ext2fs_link(fs, dir, name.c_str(), c.ino, c.ftype);
  if (err == EXT2_ET_DIR_NO_SPACE) {
    err = ext2fs_expand_dir(fs, dir);
    if (!err) err = ext2fs_link(fs, dir, name.c_str(), c.ino, c.ftype);
  }
  if (err) return fs_.error(err, "adding \"" + name + "\" to directory inode " + std::to_string(dir));
  l->names[name] = Entry{c, 0, 0};
  return Status::ok();
}

Status Tree::unlink(ext2_ino_t dir, const std::string& name) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  auto it = l->names.find(name);
  if (it == l->names.end())
    return Status(Code::kEXT4_ERROR, "removing \"" + name + "\" from directory inode " + std::to_string(dir) +
                                         ": no such entry");
  if (!l->by_ext2fs) {
    Status s = remove_entry(dir, name, it->second);
    if (!s.is_ok()) return s.with_context("removing \"" + name + "\" from directory inode " + std::to_string(dir));
  } else {
    errcode_t err = ext2fs_unlink(fs_.get(), dir, name.c_str(), 0, 0);
    if (err) return fs_.error(err, "removing \"" + name + "\" from directory inode " + std::to_string(dir));
  }
  l->names.erase(it);
  return Status::ok();
}

Status Tree::finish() {
  const uint32_t bs = fs_.get()->blocksize;
  for (ext2_ino_t dir : changed_) {
    auto it = dirs_.find(dir);
    if (it == dirs_.end() || it->second.by_ext2fs) continue;
    InodeBuf b(fs_);
    OBD_TRY(read_inode(fs_, dir, b));
    if (EXT2_I_SIZE(b.small()) <= bs) continue;  // one block: nothing to index or compact
    if (!it->second.parent)
      return Status(Code::kEXT4_ERROR, "directory inode " + std::to_string(dir) + " has no \"..\" entry");
    std::vector<DirName> names;
    names.reserve(it->second.names.size());
    for (const auto& [name, e] : it->second.names) names.push_back(DirName{name, e.c.ino, e.c.ftype});
    OBD_TRY(rewrite_dir(fs_, dir, it->second.parent, std::move(names)));
    dirs_.erase(it);  // the recorded places are stale now
  }
  changed_.clear();
  return Status::ok();
}

}  // namespace obd::ext4
