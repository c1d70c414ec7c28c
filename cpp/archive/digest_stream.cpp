// sha256 over a ByteStream, checked at its end.
#include "archive/digest_stream.h"

#include <memory>

#include "common/sha256.h"

namespace obd {

namespace {

class DigestStream final : public ByteStream {
 public:
  DigestStream(ByteStreamPtr inner, Sha256 hash, std::string expected, std::string what)
      : inner_(std::move(inner)), hash_(std::move(hash)), expected_(std::move(expected)), what_(std::move(what)) {}

  Result<size_t> read(void* buf, size_t n) override {
    if (!failed_.is_ok()) return failed_;
    if (ended_) return size_t(0);
    OBD_ASSIGN_OR_RETURN(size_t k, inner_->read(buf, n));
    if (k > 0) {
      hash_.update(buf, k);
      return k;
    }
    if (n == 0) return size_t(0);
    ended_ = true;
    if (expected_.empty()) return size_t(0);
    Result<std::string> got = hash_.finish();
    if (!got) failed_ = got.status();
    else if (*got != expected_)
      failed_ = Status(Code::kDIGEST_MISMATCH, what_ + " hashes to " + *got + ", expected " + expected_);
    if (!failed_.is_ok()) return failed_;
    return size_t(0);
  }
  uint64_t consumed() const override { return inner_->consumed(); }
  const std::string& name() const override { return inner_->name(); }

 private:
  ByteStreamPtr inner_;
  Sha256 hash_;
  std::string expected_, what_;
  bool ended_ = false;
  Status failed_;
};

}  // namespace

Result<ByteStreamPtr> make_digest_stream(ByteStreamPtr inner, std::string expected, std::string what) {
  if (!expected.empty() && expected.rfind("sha256:", 0) != 0)
    return Status(Code::kENOTSUP, what + ": only sha256 digests are checked, not " + expected);
  OBD_ASSIGN_OR_RETURN(Sha256 hash, Sha256::start(what));
  return ByteStreamPtr(std::make_unique<DigestStream>(std::move(inner), std::move(hash), std::move(expected), std::move(what)));
}

Result<ByteStreamPtr> make_verified_layer_stream(ByteStreamPtr blob, const LayerDigests& want, const std::string& what,
                                                 Compression* detected) {
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr raw, make_digest_stream(std::move(blob), want.digest, what + ": the blob"));
  OBD_ASSIGN_OR_RETURN(ByteStreamPtr tar, make_decompressing_stream(std::move(raw), detected));
  return make_digest_stream(std::move(tar), want.diff_id, what + ": the uncompressed tar (diff_id)");
}

}  // namespace obd
