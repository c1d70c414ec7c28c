// Fs: an ext2_filsys opened on an obd::File through the File io_manager,
// plus the mapping of libext2fs errcodes to Status.
#pragma once
#include <ext2fs/ext2fs.h>

#include <memory>
#include <string>

#include "common/status.h"
#include "ext4/io_manager.h"
#include "io/file.h"

namespace obd::ext4 {

struct FsOptions {
  ChannelOptions channel;
  // libext2fs stamps "now" on what it creates or deletes (dtime, s_wtime,
  // default inode times). A fixed value keeps the output deterministic;
  // libext2fs reads 0 as "use the clock", so 0 is stored as 1.
  int64_t now = 0;
  // File::sync after the final flush.
  bool sync = true;
};

class Fs {
 public:
  // Opens the ext4 filesystem on `dev` read-write and loads its bitmaps.
  static Result<std::unique_ptr<Fs>> open(FilePtr dev, const FsOptions& opts);
  // Opens it read-only (a mounted device being prefetched): nothing is
  // written, not even the clean state; bitmaps are not loaded. Such an Fs
  // needs no close(); destroying it is enough.
  static Result<std::unique_ptr<Fs>> open_read_only(FilePtr dev, const FsOptions& opts);
  // ext2fs_initialize on `dev` (mkfs); `param` as ext2fs_initialize takes it.
  static Result<std::unique_ptr<Fs>> initialize(FilePtr dev, struct ext2_super_block* param,
                                                const FsOptions& opts);
  ~Fs();

  ext2_filsys get() const { return fs_; }
  FilePtr device() const { return dev_; }
  // Writes everything back (bitmaps, descriptors, superblock, cached blocks),
  // syncs the File when asked, and only then marks the filesystem clean in
  // the primary superblock (open() marked it not clean on the device).
  // The Fs is unusable afterwards.
  // The only write-back: destroying an Fs that was not closed discards what
  // is still dirty (an mkfs or apply that failed part way).
  Status close();
  // I/O so far; after close(), the totals including the final write-back.
  ChannelStats stats() const;

  // A Status for a failed libext2fs call: the channel's own error when it
  // caused it, ENOSPC for allocation failures, EXT4_ERROR otherwise.
  Status error(errcode_t err, const std::string& what) const;

 private:
  Fs(FilePtr dev, const FsOptions& opts);
  void discard();  // frees without writing back
  FilePtr dev_;
  FsOptions opts_;
  std::unique_ptr<FileRegistration> reg_;
  ext2_filsys fs_ = nullptr;
  // s_state to write at a successful close; the device says not clean
  // (EXT2_VALID_FS clear) from open or initialize until then.
  uint16_t clean_state_ = EXT2_VALID_FS;
  ChannelStats final_stats_;
};

// errcode text from com_err ("Could not allocate block in ext2 filesystem").
std::string ext2_message(errcode_t err);

}  // namespace obd::ext4
