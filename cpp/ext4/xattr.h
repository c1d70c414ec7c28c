// Extended attributes from the tar (security.capability, trusted.*, user.*,
// system.posix_acl_*) onto an inode, through libext2fs's xattr handle, which
// places them in the inode's spare space or one shared block.
#pragma once
#include <ext2fs/ext2fs.h>

#include <string>
#include <utility>
#include <vector>

#include "common/status.h"
#include "ext4/fs.h"

namespace obd::ext4 {

using Xattrs = std::vector<std::pair<std::string, std::string>>;

// Adds or replaces each attribute; attributes not named are kept. Writes the
// inode, so callers must not write an older copy of it afterwards.
Status set_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs);
// Makes the inode's attributes exactly `xattrs`: the others are removed
// (inline data excepted). Writes the inode, as set_xattrs.
Status replace_xattrs(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs);
// What a chown of an existing non-directory then setting `xattrs` leaves:
// security.capability is gone unless `xattrs` gives it again.
Status set_xattrs_after_chown(const Fs& fs, ext2_ino_t ino, const Xattrs& xattrs);

}  // namespace obd::ext4
