// An ext2fs io_manager whose channels read and write an obd::File (a raw
// image file or an overlaybd Image), so libext2fs edits the filesystem inside
// the image and every changed block lands in the writable upper.
//
// libext2fs opens devices by name, so a File is first registered under a
// unique name (FileRegistration) and that name is handed to ext2fs_open or
// ext2fs_initialize together with file_io_manager().
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <string>

#include "common/status.h"
#include "io/file.h"

namespace obd::ext4 {

struct ChannelOptions {
  // Write-back page cache size. libext2fs re-reads bitmaps, inode tables and
  // directory blocks constantly; without a cache each is a File read.
  // 16 MiB: a conversion applied as fast with it as with 64 MiB (the scale
  // image, the 100k-file directory), and each layer's apply thread kept its
  // cache resident in a glibc arena of its own, so 64 MiB lifted the peak
  // RSS of a large image's conversion by about 150 MiB.
  size_t cache_bytes = 16u << 20;
  // At flush, compare dirty pages with what the device holds and write only
  // the ones that differ: libext2fs rewrites every bitmap block on close, and
  // an unchanged block must not be copied into the upper layer.
  bool skip_unchanged = true;
};

struct ChannelStats {
  uint64_t bytes_read = 0;     // from the File
  uint64_t bytes_written = 0;  // to the File
  uint64_t cache_hits = 0, cache_misses = 0;
  uint64_t pages_skipped = 0;  // dirty pages equal to the device (not written)
};

// Keeps `file` reachable under name() while alive.
class FileRegistration {
 public:
  FileRegistration(FilePtr file, ChannelOptions opts = {});
  ~FileRegistration();
  FileRegistration(const FileRegistration&) = delete;
  FileRegistration& operator=(const FileRegistration&) = delete;
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

io_manager file_io_manager();

// Takes the error behind the last failed channel call (libext2fs only passes
// an errcode up); ok when the channel has not failed or is not ours.
Status take_channel_error(io_channel ch);
ChannelStats channel_stats(io_channel ch);
// Closing `ch` then drops the dirty cached pages instead of writing them
// back (a filesystem being abandoned, not closed).
void channel_discard_on_close(io_channel ch);

// Writes newly allocated file data at byte offset `off` of the device: large
// writes go straight to the File, small ones are batched in the cache
// without the unchanged-page check.
Status channel_write_data(io_channel ch, uint64_t off, const void* buf, size_t len);

}  // namespace obd::ext4
