#include "ext4/xattr.h"

namespace obd::ext4 {

Status set_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs) {
  if (xattrs.empty()) return Status::ok();
  std::string what = "setting xattrs of inode " + std::to_string(ino);
  struct ext2_xattr_handle* h = nullptr;
  errcode_t err = ext2fs_xattrs_open(fs.get(), ino, &h);
  if (err) return fs.error(err, what);
  err = ext2fs_xattrs_read(h);
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

}  // namespace obd::ext4
