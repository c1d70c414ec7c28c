#include "ext4/tree.h"

#include <algorithm>

#include "ext4/inode.h"

namespace obd::ext4 {

namespace {
struct ListCtx {
  std::unordered_map<std::string, Child>* out;
};

int list_cb(ext2_ino_t, int, struct ext2_dir_entry* de, int, int, char*, void* priv) {
  auto* ctx = static_cast<ListCtx*>(priv);
  int len = ext2fs_dirent_name_len(de);
  if ((len == 1 && de->name[0] == '.') || (len == 2 && de->name[0] == '.' && de->name[1] == '.')) return 0;
  Child c;
  c.ino = de->inode;
  c.ftype = uint8_t(ext2fs_dirent_file_type(de));
  (*ctx->out)[std::string(de->name, size_t(len))] = c;
  return 0;
}
}  // namespace

Result<Tree::Listing*> Tree::listing(ext2_ino_t dir) {
  auto it = dirs_.find(dir);
  if (it != dirs_.end()) return &it->second;
  Listing l;
  ListCtx ctx{&l};
  errcode_t err = ext2fs_dir_iterate2(fs_.get(), dir, 0, nullptr, list_cb, &ctx);
  if (err) return fs_.error(err, "listing directory inode " + std::to_string(dir));
  // Filesystems without the filetype feature leave the type out; read it.
  for (auto& [name, c] : l) {
    if (c.ftype != EXT2_FT_UNKNOWN) continue;
    InodeBuf b(fs_);
    OBD_TRY(read_inode(fs_, c.ino, b));
    c.ftype = ftype_of_mode(b.large()->i_mode);
  }
  return &dirs_.emplace(dir, std::move(l)).first->second;
}

Result<const Child*> Tree::lookup(ext2_ino_t dir, const std::string& name) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  auto it = l->find(name);
  return it == l->end() ? nullptr : &it->second;
}

Result<std::vector<std::pair<std::string, Child>>> Tree::children(ext2_ino_t dir) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  std::vector<std::pair<std::string, Child>> v(l->begin(), l->end());
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return v;
}

Status Tree::link(ext2_ino_t dir, const std::string& name, Child c) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  ext2_filsys fs = fs_.get();
  errcode_t err = ext2fs_link(fs, dir, name.c_str(), c.ino, c.ftype);
  if (err == EXT2_ET_DIR_NO_SPACE) {
    err = ext2fs_expand_dir(fs, dir);
    if (!err) err = ext2fs_link(fs, dir, name.c_str(), c.ino, c.ftype);
  }
  if (err) return fs_.error(err, "adding \"" + name + "\" to directory inode " + std::to_string(dir));
  (*l)[name] = c;
  return Status::ok();
}

Status Tree::unlink(ext2_ino_t dir, const std::string& name) {
  OBD_ASSIGN_OR_RETURN(Listing * l, listing(dir));
  errcode_t err = ext2fs_unlink(fs_.get(), dir, name.c_str(), 0, 0);
  if (err) return fs_.error(err, "removing \"" + name + "\" from directory inode " + std::to_string(dir));
  l->erase(name);
  return Status::ok();
}

}  // namespace obd::ext4
