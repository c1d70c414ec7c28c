#include "image/stack.h"

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>

namespace obd {

using lsmt::kSector;
using lsmt::Segment;

Result<std::shared_ptr<StackImage>> StackImage::create(std::vector<lsmt::RoLayerPtr> lowers,
                                                       std::unique_ptr<lsmt::RwLayer> upper, std::string name,
                                                       IoEngine engine) {
  if (lowers.size() > lsmt::kMaxStackLayers)
    return Status(Code::kLSMT_TOO_MANY_LAYERS, name + ": " + std::to_string(lowers.size()) +
                                                   " read-only layers; a stack holds at most 255");
  std::shared_ptr<StackImage> img(new StackImage());
  img->name_ = std::move(name);
  img->engine_ = engine;
  std::vector<const lsmt::RoIndex*> top_first;
  for (auto it = lowers.rbegin(); it != lowers.rend(); ++it) {
    top_first.push_back(&(*it)->index);
    img->by_tag_.push_back((*it)->file.get());
    if (img->vsize_ == 0) img->vsize_ = (*it)->virtual_size();
  }
  OBD_ASSIGN_OR_RETURN(img->merged_, lsmt::merge_indexes(top_first));
  if (upper && upper->virtual_size() != 0) img->vsize_ = upper->virtual_size();
  img->lowers_ = std::move(lowers);
  img->writable_ = upper != nullptr;
  img->upper_ = std::move(upper);
  return img;
}

namespace {

struct Piece {
  File* file;
  uint8_t* dst;
  uint64_t off;  // bytes in file
  size_t len;
};

// A mapped extent lies inside its file (lowers are range-checked on open, an
// upper's data lands before its entry), so a short read means the file was
// cut after it was opened: an error, never zeros.
Status check_full(const File& f, uint64_t off, size_t len, size_t got) {
  if (got >= len) return Status::ok();
  return Status(Code::kLSMT_TRUNCATED, f.name() + ": mapped data at offset " + std::to_string(off) + " length " +
                                           std::to_string(len) + ": file ends after " + std::to_string(got) +
                                           " bytes of it (truncated while open?)");
}

// Reads pieces grouped per backing file, so an engine can batch them.
Status read_pieces(std::vector<Piece>& pieces) {
  if (pieces.size() == 1) {  // the common case: one extent
    Piece& p = pieces[0];
    OBD_ASSIGN_OR_RETURN(size_t got, p.file->pread(p.dst, p.len, p.off));
    return check_full(*p.file, p.off, p.len, got);
  }
  std::stable_sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.file < b.file; });
  thread_local std::vector<ReadReq> reqs;
  for (size_t i = 0; i < pieces.size();) {
    File* f = pieces[i].file;
    reqs.clear();
    for (; i < pieces.size() && pieces[i].file == f; i++) reqs.push_back({pieces[i].dst, pieces[i].len, pieces[i].off});
    OBD_TRY(f->pread_batch(reqs));
    for (auto& r : reqs) OBD_TRY(check_full(*f, r.off, r.len, r.done));
  }
  return Status::ok();
}

}  // namespace

Status StackImage::read_aligned(uint8_t* buf, uint64_t lba, uint64_t nsect) {
  thread_local std::vector<Piece> pieces;
  pieces.clear();
  uint64_t cursor = lba;  // next sector not yet covered
  auto zero_to = [&](uint64_t until) {
    if (until > cursor) std::memset(buf + (cursor - lba) * kSector, 0, (until - cursor) * kSector);
  };
  auto add_lower = [&](const Segment& s) {
    zero_to(s.offset);
    if (!s.zeroed) {
      pieces.push_back({by_tag_[s.tag], buf + (s.offset - lba) * kSector, s.moffset * kSector, s.length * kSector});
    } else {
      std::memset(buf + (s.offset - lba) * kSector, 0, s.length * kSector);
    }
    cursor = s.end();
  };
  auto fill_from_lowers = [&](uint64_t from, uint64_t to) {
    if (to > from) merged_.lookup(from, to - from, add_lower);
    zero_to(to);
    cursor = to;
  };
  std::shared_lock stack(stack_mu_);
  std::shared_lock<RwMutex> lock;
  if (upper_) {
    lock = std::shared_lock(upper_->mutex());
    File* data = upper_->data_file().get();
    upper_->index().lookup(lba, nsect, [&](const Segment& s) {
      fill_from_lowers(cursor, s.offset);
      if (!s.zeroed) {
        pieces.push_back({data, buf + (s.offset - lba) * kSector, s.moffset * kSector, s.length * kSector});
      } else {
        std::memset(buf + (s.offset - lba) * kSector, 0, s.length * kSector);
      }
      cursor = s.end();
    });
  }
  fill_from_lowers(cursor, lba + nsect);
  if (pieces.empty()) return Status::ok();
  // Appended RW data never moves, so reads need not hold the index lock.
  // Nor the stack lock: a snapshot only adds layers, and the sealed upper
  // keeps its data file (the same File) as a lower.
  if (lock.owns_lock()) lock.unlock();
  stack.unlock();
  return read_pieces(pieces);
}

Result<size_t> StackImage::pread(void* buf, size_t len, uint64_t off) {
  if (off >= vsize_) return size_t(0);
  len = std::min<uint64_t>(len, vsize_ - off);
  if (off % kSector == 0 && len % kSector == 0) {
    OBD_TRY(read_aligned(static_cast<uint8_t*>(buf), off / kSector, len / kSector));
    return len;
  }
  // Unaligned reads (tools, FUSE) go through an aligned bounce buffer.
  uint64_t a = off / kSector * kSector, e = (off + len + kSector - 1) / kSector * kSector;
  std::vector<uint8_t> bounce(e - a);
  OBD_TRY(read_aligned(bounce.data(), a / kSector, (e - a) / kSector));
  std::memcpy(buf, bounce.data() + (off - a), len);
  return len;
}

Status StackImage::check_write(uint64_t off, uint64_t len, const char* op) const {
  if (!upper_) return Status(Code::kEROFS, name_ + ": " + op + " on an image without a writable upper layer");
  if (off % kSector || len % kSector)
    return Status(Code::kUNALIGNED, name_ + ": " + op + " at offset " + std::to_string(off) + " length " +
                                        std::to_string(len) + " is not 512-byte aligned");
  if (off > vsize_ || len > vsize_ - off)
    return Status(Code::kOUT_OF_RANGE, name_ + ": " + op + " at offset " + std::to_string(off) + " length " +
                                           std::to_string(len) + " beyond the virtual size " + std::to_string(vsize_));
  return Status::ok();
}

// Writes hold the stack lock to the end, so a snapshot seals only after
// they have landed in the old upper.
Status StackImage::pwrite(const void* buf, size_t len, uint64_t off) {
  std::shared_lock stack(stack_mu_);
  OBD_TRY(check_write(off, len, "write"));
  return upper_->write(buf, off / kSector, len / kSector);
}

Status StackImage::punch_hole(uint64_t off, uint64_t len) {
  std::shared_lock stack(stack_mu_);
  OBD_TRY(check_write(off, len, "discard"));
  return upper_->discard(off / kSector, len / kSector);
}

// An append upper logs zeroed entries, which hide the lowers and take no
// space; a log never reuses space, so not unmapping gains nothing. A sparse
// upper's hole shows the lowers' bytes, so it stores real zeros unless there
// are no lowers and unmapping is allowed.
Status StackImage::write_zeroes(uint64_t off, uint64_t len, bool may_unmap) {
  std::shared_lock stack(stack_mu_);
  OBD_TRY(check_write(off, len, "write zeroes"));
  if (!upper_->sparse() || (may_unmap && lowers_.empty())) return upper_->discard(off / kSector, len / kSector);
  static const uint8_t kZeros[256 << 10] = {};
  for (uint64_t done = 0; done < len;) {
    uint64_t n = std::min<uint64_t>(sizeof kZeros, len - done);
    OBD_TRY(upper_->write(kZeros, (off + done) / kSector, n / kSector));
    done += n;
  }
  return Status::ok();
}

// A snapshot syncs the upper it seals, so syncing the current one suffices.
Status StackImage::sync() {
  std::shared_lock stack(stack_mu_);
  return upper_ ? upper_->sync() : Status::ok();
}

Result<std::vector<Extent>> StackImage::data_extents(uint64_t from) {
  std::vector<Extent> ranges;
  auto add = [&](const Segment& s) {
    if (!s.zeroed) ranges.push_back({s.offset * kSector, uint64_t(s.length) * kSector});
  };
  uint64_t first = from / kSector, n = vsize_ / kSector > first ? vsize_ / kSector - first : 0;
  std::shared_lock stack(stack_mu_);
  merged_.lookup(first, n, add);
  if (upper_) {
    std::shared_lock lock(upper_->mutex());
    upper_->index().lookup(first, n, add);
  }
  std::sort(ranges.begin(), ranges.end(), [](const Extent& a, const Extent& b) { return a.off < b.off; });
  std::vector<Extent> out;
  for (const Extent& e : ranges) {
    if (!out.empty() && e.off <= out.back().off + out.back().len) {
      out.back().len = std::max(out.back().off + out.back().len, e.off + e.len) - out.back().off;
    } else {
      out.push_back(e);
    }
  }
  return out;
}

}  // namespace obd
