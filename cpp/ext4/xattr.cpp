#include "ext4/xattr.h"

#include <cstring>

namespace obd::ext4 {

namespace {

// Inline data lives in this attribute: it is the file's body, not metadata.
constexpr const char* kInlineData = "system.data";

int collect_name(char* name, char*, size_t, void* data) {
  if (std::strcmp(name, kInlineData) != 0) static_cast<std::vector<std::string>*>(data)->emplace_back(name);
  return 0;
}

// The attribute chown(2) removes from a non-directory (the kernel's killpriv).
constexpr const char* kCapability = "security.capability";

enum class Drop { kNone, kAll, kCapability };

Status write_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs, Drop drop) {
  std::string what = "setting xattrs of inode " + std::to_string(ino);
  struct ext2_xattr_handle* h = nullptr;
  errcode_t err = ext2fs_xattrs_open(fs.get(), ino, &h);
  if (err) return fs.error(err, what);
  err = ext2fs_xattrs_read(h);
  if (!err && drop == Drop::kAll) {
    std::vector<std::string> old;
    err = ext2fs_xattrs_iterate(h, collect_name, &old);
    for (size_t i = 0; !err && i < old.size(); ++i) err = ext2fs_xattr_remove(h, old[i].c_str());
    if (err) what += " (removing the old ones)";
  } else if (!err && drop == Drop::kCapability) {
    // Removing an absent key is not an error in libext2fs.
    err = ext2fs_xattr_remove(h, kCapability);
    if (err) what += " (removing " + std::string(kCapability) + ")";
  }
  for (size_t i = 0; !err && i < xattrs.size(); ++i) {
    const auto& [name, value] = xattrs[i];
    if (name.empty() || name.size() > 255) {
      ext2fs_xattrs_close(&h);
      return Status(Code::kTAR_BAD_HEADER, what + ": bad xattr name \"" + name + "\"");
    }
    // libext2fs converts system.posix_acl_* values to the on-disk ACL form.
    err = ext2fs_xattr_set(h, name.c_str(), value.data(), value.size());
    if (err) what += " (" + name + ", " + std::to_string(value.size()) + " bytes)";
  }
  errcode_t cerr = ext2fs_xattrs_close(&h);
  if (!err) err = cerr;
  return err ? fs.error(err, what) : Status::ok();
}

}  // namespace

Status set_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs) {
  if (xattrs.empty()) return Status::ok();
  return write_xattrs(fs, ino, xattrs, Drop::kNone);
}

Status replace_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs) {
  return write_xattrs(fs, ino, xattrs, Drop::kAll);
}

Status set_xattrs_after_chown(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs) {
  return write_xattrs(fs, ino, xattrs, Drop::kCapability);
}

}  // namespace obd::ext4
