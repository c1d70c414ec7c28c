#include "zfile/reader.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "common/crc32c.h"
#include "zfile/codec.h"
#include "zfile/layout.h"

namespace obd {
namespace {

using zfile::JumpTable;
using zfile::Layout;

// Stored bytes fetched per source read, so a huge request does not allocate
// its whole compressed size at once.
constexpr uint64_t kMaxBatchBytes = 4 << 20;

class ZFileReader final : public File {
 public:
  ZFileReader(FilePtr src, Layout l, JumpTable jt)
      : src_(std::move(src)), l_(std::move(l)), jt_(std::move(jt)), name_(src_->name()) {}

  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override { return l_.original_size; }

  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    if (off >= l_.original_size) return size_t(0);
    len = size_t(std::min<uint64_t>(len, l_.original_size - off));
    auto* out = static_cast<uint8_t*>(buf);
    const uint64_t bs = l_.block_size;
    const uint64_t max_blocks = std::max<uint64_t>(1, kMaxBatchBytes / bs);
    for (uint64_t pos = off, end = off + len; pos < end;) {
      uint64_t first = pos / bs;
      uint64_t last = std::min((end - 1) / bs, first + max_blocks - 1);
      auto window = [&] { return read_window(first, last, pos, end, out, off); };
      Status s = window();
      Extent stored{jt_.offset(first), jt_.offset(last + 1) - jt_.offset(first)};
      if (!s && refetched(s, {&stored, 1})) s = window();
      OBD_TRY(s);
      pos = std::min(end, (last + 1) * bs);
    }
    return len;
  }

  // Several ranges at once: the blocks they need are gathered, each read and
  // decompressed once however many requests share it, and the stored runs
  // go to the source as one batch (one submit with io_uring).
  Status pread_batch(std::span<ReadReq> reqs) override {
    if (reqs.size() == 1) {
      OBD_ASSIGN_OR_RETURN(reqs[0].done, pread(reqs[0].buf, reqs[0].len, reqs[0].off));
      return Status::ok();
    }
    Scratch& sc = scratch();
    const uint64_t bs = l_.block_size;
    auto& pieces = sc.pieces;
    pieces.clear();
    for (size_t i = 0; i < reqs.size(); i++) {
      ReadReq& r = reqs[i];
      r.done = 0;
      if (r.off >= l_.original_size || r.len == 0) continue;
      uint64_t end = r.off + std::min<uint64_t>(r.len, l_.original_size - r.off);
      r.done = size_t(end - r.off);
      for (uint64_t b = r.off / bs; b * bs < end; b++) {
        uint64_t rb = b * bs;
        pieces.push_back({b, i, uint32_t(std::max(r.off, rb) - rb), uint32_t(std::min(end, rb + l_.raw_size(b)) - rb)});
      }
    }
    std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.block < b.block; });
    // Windows of whole blocks, at most kMaxBatchBytes of stored bytes each
    // (always at least one block).
    for (size_t w = 0; w < pieces.size();) {
      auto& runs = sc.runs;
      runs.clear();
      uint64_t stored_total = 0;
      size_t we = w;
      for (; we < pieces.size(); we++) {
        uint64_t b = pieces[we].block;
        if (we > w && b == pieces[we - 1].block) continue;
        uint64_t len = jt_.length(b);
        if (we > w && stored_total + len > kMaxBatchBytes) break;
        stored_total += len;
        if (!runs.empty() && b == runs.back().last + 1) {
          runs.back().last = b;
        } else {
          runs.push_back({b, b});
        }
      }
      if (sc.stored.size() < stored_total) sc.stored.resize(stored_total);
      auto& rreqs = sc.reads;
      rreqs.clear();
      uint64_t at = 0;
      for (const Run& run : runs) {
        uint64_t begin = jt_.offset(run.first), len = jt_.offset(run.last + 1) - begin;
        rreqs.push_back({sc.stored.data() + at, size_t(len), begin});
        at += len;
      }
      auto window = [&]() -> Status {
        OBD_TRY(src_->pread_batch(rreqs));
        for (const ReadReq& rr : rreqs) {
          if (rr.done != rr.len)
            return Status(Code::kZFILE_TRUNCATED, name_ + ": ZFile blocks at offset " + std::to_string(rr.off) +
                                                      ": wanted " + std::to_string(rr.len) +
                                                      " bytes, file ends after " + std::to_string(rr.done));
        }
        // Decode each block of the window, straight into the caller's buffer
        // when one piece wants all of it.
        size_t run = 0;
        uint64_t run_at = 0;
        for (size_t p = w; p < we;) {
          uint64_t b = pieces[p].block;
          size_t q = p + 1;
          while (q < we && pieces[q].block == b) q++;
          while (b > runs[run].last) {
            run_at += jt_.offset(runs[run].last + 1) - jt_.offset(runs[run].first);
            run++;
          }
          const uint8_t* sb = sc.stored.data() + run_at + (jt_.offset(b) - jt_.offset(runs[run].first));
          uint64_t rb = b * bs;
          uint32_t raw = l_.raw_size(b);
          auto dst = [&](const Piece& pc) { return static_cast<uint8_t*>(reqs[pc.req].buf) + (rb + pc.from - reqs[pc.req].off); };
          if (q == p + 1 && pieces[p].from == 0 && pieces[p].to == raw) {
            OBD_TRY(decode_block(b, sb, dst(pieces[p])));
          } else {
            if (sc.partial.size() < bs) sc.partial.resize(bs);
            OBD_TRY(decode_block(b, sb, sc.partial.data()));
            for (size_t k = p; k < q; k++) std::memcpy(dst(pieces[k]), sc.partial.data() + pieces[k].from, pieces[k].to - pieces[k].from);
          }
          p = q;
        }
        return Status::ok();
      };
      Status s = window();
      if (!s) {
        std::vector<Extent> ranges;
        for (const ReadReq& rr : rreqs) ranges.push_back({rr.off, rr.len});
        if (refetched(s, ranges)) s = window();
      }
      OBD_TRY(s);
      w = we;
    }
    return Status::ok();
  }

 private:
  // One request's share of one block: bytes [from, to) of the block.
  struct Piece {
    uint64_t block;
    size_t req;
    uint32_t from, to;
  };
  struct Run {
    uint64_t first, last;  // adjacent blocks, stored contiguously
  };
  // Per-thread scratch: small reads are the hot path and should not allocate.
  struct Scratch {
    std::vector<uint8_t> stored, partial;
    std::vector<Piece> pieces;
    std::vector<Run> runs;
    std::vector<ReadReq> reads;
  };
  static Scratch& scratch() {
    thread_local Scratch s;
    return s;
  }

  // Reads blocks first..last (stored bytes in one source read) and decodes
  // the part of [pos, end) they hold into `out`, which starts at offset `off`.
  Status read_window(uint64_t first, uint64_t last, uint64_t pos, uint64_t end, uint8_t* out, uint64_t off) const {
    Scratch& sc = scratch();
    const uint64_t bs = l_.block_size;
    uint64_t s_begin = jt_.offset(first), s_len = jt_.offset(last + 1) - s_begin;
    if (s_len > sc.stored.size()) sc.stored.resize(s_len);
    uint8_t* stored = sc.stored.data();
    OBD_TRY(src_->read_exact(stored, s_len, s_begin, Code::kZFILE_TRUNCATED, "ZFile blocks"));
    for (uint64_t b = first; b <= last; b++) {
      const uint8_t* sb = stored + (jt_.offset(b) - s_begin);
      uint64_t raw_begin = b * bs;
      uint32_t raw = l_.raw_size(b);
      uint64_t from = std::max(pos, raw_begin), to = std::min(end, raw_begin + raw);
      uint8_t* dst = out + (from - off);
      if (from == raw_begin && to == raw_begin + raw) {
        OBD_TRY(decode_block(b, sb, dst));
      } else {
        if (sc.partial.size() < bs) sc.partial.resize(bs);
        OBD_TRY(decode_block(b, sb, sc.partial.data()));
        std::memcpy(dst, sc.partial.data() + (from - raw_begin), to - from);
      }
    }
    return Status::ok();
  }

  // A block that fails its CRC or decompression may be a bad cached copy of
  // a remote blob (format spec §6.2): asks the source to drop its copy of the
  // stored ranges; true when it did, and the caller reads once more.
  bool refetched(const Status& s, std::span<const Extent> ranges) const {
    if (s.code() != Code::kZFILE_CRC_MISMATCH && s.code() != Code::kZFILE_DECOMPRESS_FAILED) return false;
    for (const Extent& e : ranges)
      if (!src_->invalidate(e.off, e.len)) return false;
    return true;
  }

  // Checks the block's CRC (before touching the decompressor) and inflates it.
  Status decode_block(uint64_t b, const uint8_t* sb, uint8_t* dst) const {
    uint32_t slen = jt_.length(b);
    uint32_t clen = l_.verify ? slen - uint32_t(zfile::kCrcSize) : slen;
    if (l_.verify) {
      const uint8_t* c = sb + clen;
      uint32_t stored = c[0] | c[1] << 8 | c[2] << 16 | uint32_t(c[3]) << 24;
      uint32_t actual = crc32c_update(kZFileBlockCrcSeed, sb, clen);
      if (stored != actual) {
        return Status(Code::kZFILE_CRC_MISMATCH, where(b) + ": stored CRC " + std::to_string(stored) +
                                                     ", computed " + std::to_string(actual));
      }
    }
    Status s = zfile::decompress_block(l_.algo, sb, clen, dst, l_.raw_size(b));
    return s.is_ok() ? s : s.with_context(where(b));
  }

  std::string where(uint64_t b) const {
    return name_ + ": ZFile block " + std::to_string(b) + " at offset " + std::to_string(jt_.offset(b)) +
           " (stored length " + std::to_string(jt_.length(b)) + ")";
  }

  FilePtr src_;
  const Layout l_;
  const JumpTable jt_;
  std::string name_;
};

Result<FilePtr> open_checked(const FilePtr& src) {
  OBD_ASSIGN_OR_RETURN(Layout l, zfile::read_layout(*src));
  OBD_ASSIGN_OR_RETURN(JumpTable jt, zfile::read_jump_table(*src, l));
  return FilePtr(std::make_shared<ZFileReader>(src, std::move(l), std::move(jt)));
}

}  // namespace

Result<bool> is_zfile(File& f) {
  zfile::RecordBytes b;
  OBD_ASSIGN_OR_RETURN(size_t got, f.pread(b.data(), b.size(), 0));
  if (got < b.size() || !zfile::has_magic(b.data(), got)) return false;
  return bool(b[32] & zfile::kFlagHeader);  // flags, low byte
}

Result<FilePtr> open_zfile(FilePtr src) {
  if (!src) return Status(Code::kEINVAL, "open_zfile: no source file");
  Result<FilePtr> r = open_checked(src);
  if (r || !r.status().is(Category::kCorrupt)) return r;
  // A cache-backed source may hold a bad copy of the header, trailer or jump
  // table (format spec §6.2): drop its copy of them and load once more. The
  // records come first, so the layout read again names the table's range.
  auto size = src->size();
  if (!size || size.value() < zfile::kRecordSize) return r;
  if (!src->invalidate(0, zfile::kRecordSize) ||
      !src->invalidate(size.value() - zfile::kRecordSize, zfile::kRecordSize))
    return r;
  if (auto l = zfile::read_layout(*src); l && !src->invalidate(l->index_offset, l->nblocks * 4)) return r;
  return open_checked(src);
}

}  // namespace obd
