#include "zfile/writer.h"

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"
#include "zfile/codec.h"
#include "zfile/parallel_for.h"

namespace obd {

using zfile::Algorithm;
using zfile::kCrcSize;

// Per-batch compression state: one output slot per block (slots are later
// packed in order, so parallel compression yields the same bytes).
struct ZFileWriter::Impl {
  explicit Impl(unsigned threads) : pool(threads) {}
  zfile::ParallelFor pool;
  size_t slot_cap = 0;
  std::vector<uint8_t> out;
  std::vector<uint32_t> out_len;
  std::vector<Status> status;
};

namespace {
// Blocks compressed per batch: enough to keep every thread busy and to make
// each write large.
size_t batch_blocks(const ZFileOptions& o) {
  size_t per_mib = std::max<size_t>(1, (1u << 20) / o.block_size);
  return std::max<size_t>(per_mib, 16 * size_t(o.threads));
}
bool is_pow2(uint32_t v) { return v && !(v & (v - 1)); }
}  // namespace

Status validate_options(const ZFileOptions& o) {
  if (o.algorithm != Algorithm::kLz4 && o.algorithm != Algorithm::kZstd) {
    return Status(Code::kEINVAL, "ZFile algorithm must be lz4 or zstd");
  }
  if (!is_pow2(o.block_size) || o.block_size < 4096 || o.block_size > zfile::kMaxBlockSize) {
    return Status(Code::kEINVAL, "ZFile block size " + std::to_string(o.block_size) +
                                     " must be a power of two between 4096 and 65536");
  }
  if (o.threads < 1 || o.threads > 256) {
    return Status(Code::kEINVAL, "ZFile compression threads must be 1..256, got " + std::to_string(o.threads));
  }
  return Status::ok();
}

ZFileWriter::ZFileWriter(FilePtr dst, ZFileOptions opts)
    : dst_(std::move(dst)), opts_(opts), impl_(std::make_unique<Impl>(opts.threads)) {}

ZFileWriter::~ZFileWriter() = default;

Result<std::unique_ptr<ZFileWriter>> ZFileWriter::create(FilePtr dst, ZFileOptions opts) {
  if (!dst) return Status(Code::kEINVAL, "ZFileWriter: no output file");
  OBD_TRY(validate_options(opts));
  std::unique_ptr<ZFileWriter> w(new ZFileWriter(std::move(dst), opts));
  size_t n = batch_blocks(opts);
  w->raw_.resize(n * opts.block_size);
  w->impl_->slot_cap = zfile::compress_bound(opts.algorithm, opts.block_size) + kCrcSize;
  w->impl_->out.resize(n * w->impl_->slot_cap);
  w->impl_->out_len.resize(n);
  w->impl_->status.resize(n);
  // Upstream writes the header first, index fields zero (flags 0x13).
  zfile::RecordBytes h = zfile::encode(w->record(zfile::kInitialHeaderFlags));
  OBD_TRY(w->dst_->pwrite(h.data(), h.size(), 0));
  w->pos_ = zfile::kRecordSize;
  return w;
}

zfile::Record ZFileWriter::record(uint64_t flags) const {
  zfile::Record r;
  r.flags = flags;
  r.block_size = opts_.block_size;
  r.algo = uint8_t(opts_.algorithm);
  r.verify = opts_.verify ? 1 : 0;
  if (flags != zfile::kInitialHeaderFlags) {
    r.index_offset = index_offset_;
    r.index_size = lengths_.size();
    r.original_file_size = raw_total_;
    r.index_crc = index_crc_;
  }
  return r;
}

Status ZFileWriter::fail(Status s) {
  if (error_.is_ok()) error_ = s;
  return s;
}

Status ZFileWriter::append(const void* data, size_t len) {
  if (!error_.is_ok()) return error_;
  if (finished_) return Status(Code::kEINVAL, dst_->name() + ": ZFile writer already finished");
  auto* p = static_cast<const uint8_t*>(data);
  while (len > 0) {
    size_t n = std::min(len, raw_.size() - raw_len_);
    std::memcpy(raw_.data() + raw_len_, p, n);
    raw_len_ += n;
    raw_total_ += n;
    p += n;
    len -= n;
    if (raw_len_ == raw_.size()) OBD_TRY(fail(flush_blocks()));
  }
  return Status::ok();
}

// Compresses the pending raw bytes (the last block may be partial) and
// writes them in one pwrite.
Status ZFileWriter::flush_blocks() {
  if (raw_len_ == 0) return Status::ok();
  const size_t bs = opts_.block_size;
  const size_t n = (raw_len_ + bs - 1) / bs;
  if (lengths_.size() + n > zfile::kMaxBlocks) {
    return Status(Code::kEINVAL, dst_->name() + ": input too large for a ZFile (more than 1e9 blocks)");
  }
  Impl& im = *impl_;
  im.pool.run(n, [&](size_t i) {
    size_t raw = std::min(bs, raw_len_ - i * bs);
    uint8_t* slot = im.out.data() + i * im.slot_cap;
    auto r = zfile::compress_block(opts_.algorithm, raw_.data() + i * bs, raw, slot, im.slot_cap - kCrcSize);
    if (!r.is_ok()) {
      im.status[i] = r.status();
      return;
    }
    size_t clen = *r;
    if (opts_.verify) {
      uint32_t crc = crc32c_update(kZFileBlockCrcSeed, slot, clen);
      for (int k = 0; k < 4; k++) slot[clen + k] = uint8_t(crc >> (8 * k));
      clen += kCrcSize;
    }
    im.out_len[i] = uint32_t(clen);
    im.status[i] = Status::ok();
  });
  // Pack the slots in block order (always moving left, so memmove is safe).
  size_t packed = 0;
  for (size_t i = 0; i < n; i++) {
    OBD_TRY(im.status[i]);
    std::memmove(im.out.data() + packed, im.out.data() + i * im.slot_cap, im.out_len[i]);
    packed += im.out_len[i];
    lengths_.push_back(im.out_len[i]);
  }
  OBD_TRY(dst_->pwrite(im.out.data(), packed, pos_));
  pos_ += packed;
  raw_len_ = 0;
  return Status::ok();
}

Status ZFileWriter::finish() {
  if (!error_.is_ok()) return error_;
  if (finished_) return Status(Code::kEINVAL, dst_->name() + ": ZFile writer already finished");
  finished_ = true;
  OBD_TRY(fail(flush_blocks()));

  // Jump table: u32 LE stored lengths, written in chunks.
  index_offset_ = pos_;
  std::vector<uint8_t> buf;
  constexpr size_t kChunk = 64 * 1024;
  for (size_t i = 0; i < lengths_.size(); i += kChunk) {
    size_t n = std::min(kChunk, lengths_.size() - i);
    buf.resize(n * 4);
    for (size_t k = 0; k < n; k++) {
      for (int b = 0; b < 4; b++) buf[k * 4 + b] = uint8_t(lengths_[i + k] >> (8 * b));
    }
    index_crc_ = crc32c_update(index_crc_, buf.data(), buf.size());
    OBD_TRY(fail(dst_->pwrite(buf.data(), buf.size(), pos_)));
    pos_ += buf.size();
  }

  zfile::RecordBytes t = zfile::encode(record(zfile::kTrailerFlags));
  OBD_TRY(fail(dst_->pwrite(t.data(), t.size(), pos_)));
  pos_ += t.size();
  if (opts_.overwrite_header) {
    zfile::RecordBytes h = zfile::encode(record(zfile::kOverwrittenHeaderFlags));
    OBD_TRY(fail(dst_->pwrite(h.data(), h.size(), 0)));
  }
  return Status::ok();
}

}  // namespace obd
