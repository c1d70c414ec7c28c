#include "ext4/fs.h"

#include <cerrno>
#include <cstring>

namespace obd::ext4 {

namespace {
time_t fixed_now(int64_t now) { return now == 0 ? time_t(1) : time_t(now); }
}  // namespace

Fs::Fs(FilePtr dev, const FsOptions& opts) : dev_(std::move(dev)), opts_(opts) {
  reg_ = std::make_unique<FileRegistration>(dev_, opts_.channel);
}

Fs::~Fs() { discard(); }

void Fs::discard() {
  if (!fs_) return;
  // Nothing dirty is written: a filesystem reaches here only when close()
  // was not called or failed, and close() is the one write-back path.
  if (fs_->io) channel_discard_on_close(fs_->io);
  ext2fs_free(fs_);
  fs_ = nullptr;
}

Result<std::unique_ptr<Fs>> Fs::open(FilePtr dev, const FsOptions& opts) {
  std::unique_ptr<Fs> f(new Fs(std::move(dev), opts));
  errcode_t err = ext2fs_open(f->reg_->name().c_str(), EXT2_FLAG_RW | EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0,
                              file_io_manager(), &f->fs_);
  if (err) {
    f->fs_ = nullptr;
    if (err == EXT2_ET_BAD_MAGIC)
      return Status(Code::kEXT4_ERROR, f->dev_->name() + ": no ext4 filesystem on the device (use mkfs)");
    return f->error(err, "opening the ext4 filesystem on " + f->dev_->name());
  }
  // Writing under a journal that still holds transactions is lost work:
  // the kernel replays the old journal over our metadata on the next mount.
  if (ext2fs_has_feature_journal_needs_recovery(f->fs_->super))
    return Status(Code::kEXT4_ERROR, f->dev_->name() + ": the ext4 journal needs recovery; run e2fsck first");
  if (!(f->fs_->super->s_state & EXT2_VALID_FS))
    return Status(Code::kEXT4_ERROR, f->dev_->name() + ": the ext4 filesystem was not cleanly unmounted or has errors; run e2fsck first");
  f->fs_->now = fixed_now(opts.now);
  err = ext2fs_read_bitmaps(f->fs_);
  if (err) return f->error(err, "reading the ext4 bitmaps of " + f->dev_->name());
  return f;
}

Result<std::unique_ptr<Fs>> Fs::initialize(FilePtr dev, struct ext2_super_block* param, const FsOptions& opts) {
  std::unique_ptr<Fs> f(new Fs(std::move(dev), opts));
  errcode_t err = ext2fs_initialize(f->reg_->name().c_str(), EXT2_FLAG_64BITS, param, file_io_manager(), &f->fs_);
  if (err) {
    f->fs_ = nullptr;
    return f->error(err, "initializing an ext4 filesystem on " + f->dev_->name());
  }
  f->fs_->now = fixed_now(opts.now);
  return f;
}

Status Fs::close() {
  if (!fs_) return Status(Code::kINTERNAL, "ext4 filesystem closed twice");
  // Flush first so the channel's statistics include the final write-back.
  errcode_t err = ext2fs_flush2(fs_, 0);
  final_stats_ = channel_stats(fs_->io);
  Status st;
  if (err) {
    st = error(err, "writing back the ext4 filesystem on " + dev_->name());
    discard();  // no second write attempt
  } else {
    err = ext2fs_close_free(&fs_);
    fs_ = nullptr;
    if (err) st = Status(Code::kEXT4_ERROR, "closing the ext4 filesystem on " + dev_->name() + ": " + ext2_message(err));
  }
  if (!st.is_ok()) return st;
  if (opts_.sync) OBD_TRY(dev_->sync());
  return Status::ok();
}

ChannelStats Fs::stats() const { return fs_ ? channel_stats(fs_->io) : final_stats_; }

Status Fs::error(errcode_t err, const std::string& what) const {
  if (fs_ && fs_->io) {
    Status ch = take_channel_error(fs_->io);
    if (!ch.is_ok()) return ch.with_context(what);
  }
  if (err == EXT2_ET_BLOCK_ALLOC_FAIL || err == ENOSPC) {
    std::string detail;
    if (fs_)
      detail = " (" + std::to_string(ext2fs_free_blocks_count(fs_->super)) + " of " +
               std::to_string(ext2fs_blocks_count(fs_->super)) + " blocks free)";
    return Status(Code::kENOSPC, what + ": no space left on the ext4 filesystem" + detail +
                                     "; use a larger virtual size");
  }
  if (err == EXT2_ET_INODE_ALLOC_FAIL)
    return Status(Code::kENOSPC, what + ": no free inodes left on the ext4 filesystem; use a larger virtual size");
  if (err == EXT2_ET_EA_NO_SPACE)
    return Status(Code::kENOSPC, what + ": extended attributes do not fit in the inode and one block");
  return Status(Code::kEXT4_ERROR, what + ": " + ext2_message(err));
}

}  // namespace obd::ext4
