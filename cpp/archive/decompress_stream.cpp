// The decompressing stream: gzip (ISA-L's igzip where the build has it,
// about twice zlib's speed on layer blobs: cpp/tools/inflate_bench; else
// zlib) or zstd chosen by magic, else plain.
#include <zlib.h>
#include <zstd.h>
#ifdef OBD_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "archive/byte_stream.h"

namespace obd {

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip: return "gzip";
    case Compression::kZstd: return "zstd";
    case Compression::kNone: break;
  }
  return "none";
}

namespace {

constexpr size_t kInBuf = 128 * 1024;

// Buffered compressed input shared by both decoders. `inner` may return short
// reads; `offset()` is the compressed position of the next unread byte.
class Input {
 public:
  Input(ByteStreamPtr inner, std::vector<uint8_t> prefix) : inner_(std::move(inner)), buf_(std::move(prefix)) {
    len_ = buf_.size();
    buf_.resize(std::max(kInBuf, len_));
  }
  // Refills an empty buffer; false at the end of the inner stream.
  Result<bool> refill() {
    if (pos_ < len_) return true;
    if (eof_) return false;
    OBD_ASSIGN_OR_RETURN(size_t k, inner_->read(buf_.data(), buf_.size()));
    pos_ = 0;
    len_ = k;
    if (k == 0) eof_ = true;
    return k > 0;
  }
  const uint8_t* data() const { return buf_.data() + pos_; }
  size_t avail() const { return len_ - pos_; }
  void advance(size_t k) { pos_ += k; }
  uint64_t offset() const { return inner_->consumed() - avail(); }
  uint64_t consumed() const { return inner_->consumed(); }
  const std::string& name() const { return inner_->name(); }

 private:
  ByteStreamPtr inner_;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0, len_ = 0;
  bool eof_ = false;
};

// The gzip member walk both decoders share: members in turn (gzip
// concatenation), zero padding after the last (gzip ignores it too), and
// truncation and corruption as GZIP_CORRUPT at a compressed offset.
class GzipMembers : public ByteStream {
 public:
  explicit GzipMembers(Input in) : in_(std::move(in)) {}

  Result<size_t> read(void* buf, size_t n) final {
    while (!done_ && n > 0) {
      OBD_ASSIGN_OR_RETURN(bool more, in_.refill());
      if (between_members_) {
        OBD_TRY(next_member(more));
        continue;
      }
      OBD_ASSIGN_OR_RETURN(size_t out, inflate_some(static_cast<uint8_t*>(buf), n, more));
      if (out > 0) return out;
    }
    return size_t(0);
  }
  uint64_t consumed() const final { return in_.consumed(); }
  const std::string& name() const final { return in_.name(); }

 protected:
  // Inflates what in_ holds into buf (advancing in_) and calls member_ended()
  // at the end of a member; `more` is false once the input has ended.
  virtual Result<size_t> inflate_some(uint8_t* buf, size_t n, bool more) = 0;
  // Readies the decoder for the next member's header.
  virtual Status reset_decoder() = 0;

  void member_ended() { between_members_ = true; }
  Status corrupt(const std::string& what) const {
    return Status(Code::kGZIP_CORRUPT, name() + ": " + what + " at compressed offset " + std::to_string(in_.offset()));
  }

  Input in_;

 private:
  Status next_member(bool more) {
    if (!more) {
      done_ = true;
      return Status::ok();
    }
    if (zero_tail_ || in_.data()[0] == 0) {
      zero_tail_ = true;
      const uint8_t* p = in_.data();
      size_t k = in_.avail();
      if (std::any_of(p, p + k, [](uint8_t b) { return b != 0; })) return corrupt("garbage after the last gzip member");
      in_.advance(k);
      return Status::ok();
    }
    if (in_.data()[0] != 0x1f) return corrupt("garbage after gzip member (not a gzip header)");
    OBD_TRY(reset_decoder());
    between_members_ = false;
    return Status::ok();
  }

  bool done_ = false, between_members_ = false, zero_tail_ = false;
};

class GzipStream final : public GzipMembers {
 public:
  explicit GzipStream(Input in) : GzipMembers(std::move(in)) {}
  ~GzipStream() override {
    if (init_) inflateEnd(&zs_);
  }
  Status init() {
    std::memset(&zs_, 0, sizeof zs_);
    // 15+32: the largest window, gzip or zlib header detected by zlib.
    if (inflateInit2(&zs_, 15 + 32) != Z_OK) return Status(Code::kINTERNAL, "inflateInit2 failed");
    init_ = true;
    return Status::ok();
  }

 private:
  Result<size_t> inflate_some(uint8_t* buf, size_t n, bool more) override {
    zs_.next_in = const_cast<Bytef*>(in_.data());
    zs_.avail_in = uInt(std::min<size_t>(in_.avail(), UINT32_MAX));
    zs_.next_out = buf;
    zs_.avail_out = uInt(std::min<size_t>(n, UINT32_MAX));
    int ret = inflate(&zs_, Z_NO_FLUSH);
    size_t used = size_t(zs_.next_in - in_.data());
    size_t out = size_t(zs_.next_out - buf);
    in_.advance(used);
    if (ret == Z_STREAM_END) {
      member_ended();
    } else if (ret == Z_BUF_ERROR || (ret == Z_OK && used == 0 && out == 0)) {
      if (!more) return corrupt("gzip data ends early (truncated)");
    } else if (ret != Z_OK) {
      return corrupt(zs_.msg ? zs_.msg : "inflate error " + std::to_string(ret));
    }
    return out;
  }
  Status reset_decoder() override {
    if (inflateReset(&zs_) != Z_OK) return Status(Code::kINTERNAL, "inflateReset failed");
    return Status::ok();
  }

  z_stream zs_;
  bool init_ = false;
};

#ifdef OBD_HAVE_ISAL
// The same contract as GzipStream, decoded by igzip.
class IgzipStream final : public GzipMembers {
 public:
  explicit IgzipStream(Input in) : GzipMembers(std::move(in)) {
    isal_inflate_init(&st_);
    st_.crc_flag = ISAL_GZIP;
  }

 private:
  Result<size_t> inflate_some(uint8_t* buf, size_t n, bool more) override {
    st_.next_in = const_cast<uint8_t*>(in_.data());
    st_.avail_in = uint32_t(std::min<size_t>(in_.avail(), UINT32_MAX));
    st_.next_out = buf;
    st_.avail_out = uint32_t(std::min<size_t>(n, UINT32_MAX));
    int ret = isal_inflate(&st_);
    size_t used = size_t(st_.next_in - in_.data());
    size_t out = size_t(st_.next_out - buf);
    in_.advance(used);
    if (ret != ISAL_DECOMP_OK) return corrupt(error_name(ret));
    if (st_.block_state == ISAL_BLOCK_FINISH) {
      member_ended();
    } else if (used == 0 && out == 0 && !more) {
      return corrupt("gzip data ends early (truncated)");
    }
    return out;
  }
  Status reset_decoder() override {
    isal_inflate_reset(&st_);
    st_.crc_flag = ISAL_GZIP;
    return Status::ok();
  }
  static const char* error_name(int ret) {
    switch (ret) {
      case ISAL_INVALID_BLOCK: return "invalid deflate block";
      case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
      case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
      case ISAL_INVALID_WRAPPER: return "invalid gzip header";
      case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
      case ISAL_INCORRECT_CHECKSUM: return "incorrect data check";
      default: return "inflate error";
    }
  }

  inflate_state st_;
};
#endif

class ZstdStream final : public ByteStream {
 public:
  explicit ZstdStream(Input in) : in_(std::move(in)) {}
  ~ZstdStream() override { ZSTD_freeDCtx(dctx_); }
  Status init() {
    dctx_ = ZSTD_createDCtx();
    // The library's default window limit (128 MiB) bounds memory for hostile input.
    if (!dctx_) return Status(Code::kINTERNAL, "ZSTD_createDCtx failed");
    return Status::ok();
  }

  Result<size_t> read(void* buf, size_t n) override {
    ZSTD_outBuffer out{buf, n, 0};
    while (out.pos == 0 && n > 0) {
      OBD_ASSIGN_OR_RETURN(bool more, in_.refill());
      if (!more && frame_done_) return size_t(0);
      // Called with no input too: the decoder may still hold output to flush.
      ZSTD_inBuffer inb{in_.data(), in_.avail(), 0};
      size_t ret = ZSTD_decompressStream(dctx_, &out, &inb);
      in_.advance(inb.pos);
      if (ZSTD_isError(ret)) return corrupt(ZSTD_getErrorName(ret));
      frame_done_ = ret == 0;
      if (!more && out.pos == 0 && !frame_done_) return corrupt("zstd data ends early (truncated)");
    }
    return out.pos;
  }
  uint64_t consumed() const override { return in_.consumed(); }
  const std::string& name() const override { return in_.name(); }

 private:
  Status corrupt(const std::string& what) const {
    return Status(Code::kZSTD_CORRUPT, name() + ": " + what + " at compressed offset " + std::to_string(in_.offset()));
  }

  Input in_;
  ZSTD_DCtx* dctx_ = nullptr;
  bool frame_done_ = false;
};

// Plain data: replays the sniffed bytes, then reads through.
class PlainStream final : public ByteStream {
 public:
  PlainStream(ByteStreamPtr inner, std::vector<uint8_t> prefix) : inner_(std::move(inner)), prefix_(std::move(prefix)) {}
  Result<size_t> read(void* buf, size_t n) override {
    if (pos_ < prefix_.size()) {
      size_t k = std::min(n, prefix_.size() - pos_);
      std::memcpy(buf, prefix_.data() + pos_, k);
      pos_ += k;
      return k;
    }
    return inner_->read(buf, n);
  }
  uint64_t consumed() const override { return inner_->consumed() - (prefix_.size() - pos_); }
  const std::string& name() const override { return inner_->name(); }

 private:
  ByteStreamPtr inner_;
  std::vector<uint8_t> prefix_;
  size_t pos_ = 0;
};

}  // namespace

Result<ByteStreamPtr> make_decompressing_stream(ByteStreamPtr inner, Compression* detected) {
  std::vector<uint8_t> magic(4);
  OBD_ASSIGN_OR_RETURN(size_t k, read_full(*inner, magic.data(), magic.size()));
  magic.resize(k);
  static const uint8_t kGzip[] = {0x1f, 0x8b};
  static const uint8_t kZstd[] = {0x28, 0xb5, 0x2f, 0xfd};
  Compression c = Compression::kNone;
  if (k >= 2 && std::memcmp(magic.data(), kGzip, 2) == 0) c = Compression::kGzip;
  else if (k >= 4 && std::memcmp(magic.data(), kZstd, 4) == 0) c = Compression::kZstd;
  if (detected) *detected = c;
  if (c == Compression::kGzip) {
#ifdef OBD_HAVE_ISAL
    return ByteStreamPtr(std::make_unique<IgzipStream>(Input(std::move(inner), std::move(magic))));
#else
    auto s = std::make_unique<GzipStream>(Input(std::move(inner), std::move(magic)));
    OBD_TRY(s->init());
    return ByteStreamPtr(std::move(s));
#endif
  }
  if (c == Compression::kZstd) {
    auto s = std::make_unique<ZstdStream>(Input(std::move(inner), std::move(magic)));
    OBD_TRY(s->init());
    return ByteStreamPtr(std::move(s));
  }
  return ByteStreamPtr(std::make_unique<PlainStream>(std::move(inner), std::move(magic)));
}

}  // namespace obd
