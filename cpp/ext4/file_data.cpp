#include "ext4/file_data.h"

#include <cassert>
#include <cstring>

#include "ext4/io_manager.h"

namespace obd::ext4 {

namespace {
constexpr size_t kChunk = 8u << 20;
// Largest file ext4 maps with 32-bit logical block numbers (4 KiB blocks).
constexpr uint64_t kMaxFileBlocks = 1ull << 32;
// The longest initialised extent: allocating this much at once keeps a big
// file at one extent per 128 MiB.
constexpr uint64_t kAllocBlocks = 32768;
}  // namespace

DataWriter::DataWriter(const Fs& fs) : fs_(fs), buf_(kChunk), bs_(fs.get()->blocksize) {}

Status DataWriter::write(ext2_ino_t ino, InodeBuf& b, TarReader& tar, const TarEntry& e) {
  const std::string& name = e.path;
  if (e.size > (kMaxFileBlocks - 1) * bs_)
    return Status(Code::kTAR_BAD_HEADER, name + ": file size " + std::to_string(e.size) + " exceeds ext4's limit");
  ino_ = ino;
  inode_ = &b;
  active_ = false;
  alloc_begin_ = alloc_end_ = 0;
  OBD_TRY(init_extent_header(fs_, ino, b));
  errcode_t err = ext2fs_inode_size_set(fs_.get(), b.small(), e.size);
  if (err) return fs_.error(err, name + ": setting the size");
  if (e.sparse.empty()) {
    OBD_TRY(put_from_tar(tar, 0, e.size, e));
  } else {
    // TarReader::validate_sparse has checked the map: in order, inside the
    // file, covering exactly the stored data.
    for (const Extent& s : e.sparse) OBD_TRY(put_from_tar(tar, s.off, s.len, e));
  }
  if (active_) OBD_TRY(flush());
  assert(tar.data_remaining() == 0);
  return Status::ok();
}

Status DataWriter::put_from_tar(TarReader& tar, uint64_t pos, uint64_t len, const TarEntry& e) {
  seg_end_blk_ = (pos + len + bs_ - 1) / bs_;
  while (len > 0) {
    if (active_) {
      uint64_t expected = chunk_lblk_ * bs_ + fill_;
      if (pos / bs_ == expected / bs_) {
        // A hole inside the block being filled: zeros up to pos.
        std::memset(buf_.data() + fill_, 0, pos - expected);
        fill_ += pos - expected;
      } else {
        OBD_TRY(flush());  // a hole of whole blocks: leave them unmapped
      }
    }
    if (!active_) {
      chunk_lblk_ = pos / bs_;
      fill_ = pos % bs_;
      std::memset(buf_.data(), 0, fill_);
      active_ = true;
    }
    chunk_seg_end_ = seg_end_blk_;  // the allocation window stops at this segment's end
    size_t want = size_t(std::min<uint64_t>(len, buf_.size() - fill_));
    OBD_ASSIGN_OR_RETURN(size_t got, tar.read_data(buf_.data() + fill_, want));
    if (got == 0)
      return Status(Code::kTAR_TRUNCATED, e.path + ": the archive ends inside the file's data");
    fill_ += got;
    pos += got;
    len -= got;
    if (fill_ == buf_.size()) OBD_TRY(flush());
  }
  return Status::ok();
}

Status DataWriter::flush() {
  active_ = false;
  if (fill_ == 0) return Status::ok();
  ext2_filsys fs = fs_.get();
  uint64_t nblk = (fill_ + bs_ - 1) / bs_;
  std::memset(buf_.data() + fill_, 0, nblk * bs_ - fill_);  // tail of the last block
  fill_ = 0;
  std::string what = "allocating data blocks of inode " + std::to_string(ino_);
  uint64_t end = chunk_lblk_ + nblk;
  errcode_t err = 0;
  if (chunk_lblk_ < alloc_begin_ || end > alloc_end_) {
    bool extend = chunk_lblk_ >= alloc_begin_ && chunk_lblk_ <= alloc_end_ && alloc_end_ > alloc_begin_;
    uint64_t from = extend ? alloc_end_ : chunk_lblk_;
    uint64_t to = std::max(end, std::min(chunk_seg_end_, from + kAllocBlocks));
    err = ext2fs_fallocate(fs, EXT2_FALLOCATE_FORCE_INIT | EXT2_FALLOCATE_INIT_BEYOND_EOF, ino_, inode_->small(),
                           goal_, from, to - from);
    if (err) return fs_.error(err, what);
    if (!extend) alloc_begin_ = from;
    alloc_end_ = to;
  }
  // Find where the chunk landed and write it run by run.
  ext2_extent_handle_t h;
  err = ext2fs_extent_open2(fs, ino_, inode_->small(), &h);
  if (err) return fs_.error(err, what);
  Status st;
  uint64_t lblk = chunk_lblk_;
  while (lblk < end) {
    struct ext2fs_extent ex;
    err = ext2fs_extent_goto(h, lblk);
    if (!err) err = ext2fs_extent_get(h, EXT2_EXTENT_CURRENT, &ex);
    if (err) {
      st = fs_.error(err, "mapping data blocks of inode " + std::to_string(ino_));
      break;
    }
    if (ex.e_lblk > lblk || ex.e_lblk + ex.e_len <= lblk || (ex.e_flags & EXT2_EXTENT_FLAGS_UNINIT)) {
      st = Status(Code::kINTERNAL, "fallocate left logical block " + std::to_string(lblk) + " of inode " +
                                       std::to_string(ino_) + " unmapped");
      break;
    }
    uint64_t run = std::min<uint64_t>(ex.e_lblk + ex.e_len, end) - lblk;
    blk64_t pblk = ex.e_pblk + (lblk - ex.e_lblk);
    st = channel_write_data(fs->io, pblk * bs_, buf_.data() + (lblk - chunk_lblk_) * bs_, run * bs_);
    if (!st.is_ok()) {
      st = st.with_context("writing data of inode " + std::to_string(ino_));
      break;
    }
    goal_ = pblk + run;
    lblk += run;
  }
  ext2fs_extent_free(h);
  return st;
}

}  // namespace obd::ext4
