// sha256 (OpenSSL EVP) over a ByteStream, checked at its end.
#include "archive/digest_stream.h"

#include <openssl/evp.h>

#include <memory>

namespace obd {

namespace {

using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

class DigestStream final : public ByteStream {
 public:
  DigestStream(ByteStreamPtr inner, MdCtx ctx, std::string expected, std::string what)
      : inner_(std::move(inner)), ctx_(std::move(ctx)), expected_(std::move(expected)), what_(std::move(what)) {}

  Result<size_t> read(void* buf, size_t n) override {
    if (!failed_.is_ok()) return failed_;
    if (ended_) return size_t(0);
    OBD_ASSIGN_OR_RETURN(size_t k, inner_->read(buf, n));
    if (k > 0) {
      EVP_DigestUpdate(ctx_.get(), buf, k);
      return k;
    }
    if (n == 0) return size_t(0);
    ended_ = true;
    if (expected_.empty()) return size_t(0);
    std::string got = hex_digest();
    if (got != expected_) {
      failed_ = Status(Code::kDIGEST_MISMATCH, what_ + " hashes to " + got + ", expected " + expected_);
      return failed_;
    }
    return size_t(0);
  }
  uint64_t consumed() const override { return inner_->consumed(); }
  const std::string& name() const override { return inner_->name(); }

 private:
  std::string hex_digest() {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_DigestFinal_ex(ctx_.get(), md, &len);
    static const char kHex[] = "0123456789abcdef";
    std::string out = "sha256:";
    for (unsigned i = 0; i < len; i++) {
      out += kHex[md[i] >> 4];
      out += kHex[md[i] & 15];
    }
    return out;
  }

  ByteStreamPtr inner_;
  MdCtx ctx_;
  std::string expected_, what_;
  bool ended_ = false;
  Status failed_;
};

}  // namespace

Result<ByteStreamPtr> make_digest_stream(ByteStreamPtr inner, std::string expected, std::string what) {
  if (!expected.empty() && expected.rfind("sha256:", 0) != 0)
    return Status(Code::kENOTSUP, what + ": only sha256 digests are checked, not " + expected);
  MdCtx ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return Status(Code::kINTERNAL, what + ": OpenSSL could not start a sha256 digest");
  return ByteStreamPtr(std::make_unique<DigestStream>(std::move(inner), std::move(ctx), std::move(expected), std::move(what)));
}

Result<ByteStreamPtr> make_verified_layer_stream(ByteStreamPtr blob, const LayerDigests& want, const std::string& what,
                                                 Compression* detected) {
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr raw, make_digest_stream(std::move(blob), want.digest, what + ": the blob"));
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr tar, make_decompressing_stream(std::move(raw), detected));
  return make_digest_stream(std::move(tar), want.diff_id, what + ": the uncompressed tar (diff_id)");
}

}  // namespace obd
