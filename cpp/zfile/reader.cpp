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
    // Per-thread scratch: small reads are the hot path and should not allocate.
    thread_local std::vector<uint8_t> stored_buf, partial_buf;
    for (uint64_t pos = off, end = off + len; pos < end;) {
      uint64_t first = pos / bs;
      uint64_t last = std::min((end - 1) / bs, first + max_blocks - 1);
      uint64_t s_begin = jt_.offset(first), s_len = jt_.offset(last + 1) - s_begin;
      if (s_len > stored_buf.size()) stored_buf.resize(s_len);
      uint8_t* stored = stored_buf.data();
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
          if (partial_buf.size() < bs) partial_buf.resize(bs);
          OBD_TRY(decode_block(b, sb, partial_buf.data()));
          std::memcpy(dst, partial_buf.data() + (from - raw_begin), to - from);
        }
        pos = to;
      }
    }
    return len;
  }

 private:
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

}  // namespace

Result<bool> is_zfile(File& f) {
  zfile::RecordBytes b;
  OBD_ASSIGN_OR_RETURN(size_t got, f.pread(b.data(), b.size(), 0));
  if (got < b.size() || !zfile::has_magic(b.data(), got)) return false;
  return bool(b[32] & zfile::kFlagHeader);  // flags, low byte
}

Result<FilePtr> open_zfile(FilePtr src) {
  if (!src) return Status(Code::kEINVAL, "open_zfile: no source file");
  OBD_ASSIGN_OR_RETURN(Layout l, zfile::read_layout(*src));
  OBD_ASSIGN_OR_RETURN(JumpTable jt, zfile::read_jump_table(*src, l));
  return FilePtr(std::make_shared<ZFileReader>(std::move(src), std::move(l), std::move(jt)));
}

}  // namespace obd
