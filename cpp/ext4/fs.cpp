#include "ext4/fs.h"

#include <cerrno>
#include <cstring>

namespace obd::ext4 {

namespace {
time_t fixed_now(int64_t now) { return now == 0 ? time_t(1) : time_t(now); }

// Writes the primary superblock alone (no backups, no descriptors) and
// flushes the channel; the flags are restored so a later full flush
// writes everything again.
errcode_t write_primary_super(ext2_filsys fs) {
  const int saved = fs->flags & (EXT2_FLAG_SUPER_ONLY | EXT2_FLAG_MASTER_SB_ONLY);
  fs->flags |= EXT2_FLAG_SUPER_ONLY | EXT2_FLAG_MASTER_SB_ONLY;
  ext2fs_mark_super_dirty(fs);
  errcode_t err = ext2fs_flush2(fs, 0);
  fs->flags = (fs->flags & ~(EXT2_FLAG_SUPER_ONLY | EXT2_FLAG_MASTER_SB_ONLY)) | saved;
  return err;
}
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
  // Not clean on the device before anything else changes: a process killed
  // or a write-back failed part way leaves metadata the bitmaps and counts
  // do not match, and e2fsck -p or the kernel must not trust it.
  f->clean_state_ = f->fs_->super->s_state;
  f->fs_->super->s_state &= ~EXT2_VALID_FS;
  err = write_primary_super(f->fs_);
  if (err) return f->error(err, "marking the ext4 filesystem on " + f->dev_->name() + " not clean");
  if (opts.sync) OBD_TRY(f->dev_->sync());
  err = ext2fs_read_bitmaps(f->fs_);
  if (err) return f->error(err, "reading the ext4 bitmaps of " + f->dev_->name());
  return f;
}

Result<std::unique_ptr<Fs>> Fs::open_read_only(FilePtr dev, const FsOptions& opts) {
  std::unique_ptr<Fs> f(new Fs(std::move(dev), opts));
  errcode_t err = ext2fs_open(f->reg_->name().c_str(), EXT2_FLAG_64BITS | EXT2_FLAG_SKIP_MMP, 0, 0,
                              file_io_manager(), &f->fs_);
  if (err) {
    f->fs_ = nullptr;
    if (err == EXT2_ET_BAD_MAGIC) return Status(Code::kEXT4_ERROR, f->dev_->name() + ": no ext4 filesystem on the device");
    return f->error(err, "opening the ext4 filesystem on " + f->dev_->name() + " read-only");
  }
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
  // mkfs follows the same rule: clean is the last thing close() writes.
  f->clean_state_ = f->fs_->super->s_state;
  f->fs_->super->s_state &= ~EXT2_VALID_FS;
  return f;
}

Status Fs::close() {
  if (!fs_) return Status(Code::kINTERNAL, "ext4 filesystem closed twice");
  if (!(fs_->flags & EXT2_FLAG_RW)) {
    final_stats_ = channel_stats(fs_->io);
    discard();  // opened read-only: nothing to write back
    return Status::ok();
  }
  // Everything but the clean state first, synced; then the superblock that
  // says clean. A crash in between leaves a consistent filesystem marked
  // not clean, never an inconsistent one marked clean.
  errcode_t err = ext2fs_flush2(fs_, 0);
  Status st;
  if (err) st = error(err, "writing back the ext4 filesystem on " + dev_->name());
  if (st.is_ok() && opts_.sync) st = dev_->sync().with_context("syncing the ext4 filesystem on " + dev_->name());
  if (st.is_ok()) {
    fs_->super->s_state = clean_state_;
    err = write_primary_super(fs_);
    if (err) st = error(err, "marking the ext4 filesystem on " + dev_->name() + " clean");
  }
  // After the final write-back, so the statistics include it.
  final_stats_ = channel_stats(fs_->io);
  if (!st.is_ok()) {
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
