#include "common/sha256.h"

#include <openssl/evp.h>

namespace obd {

void Sha256::Free::operator()(evp_md_ctx_st* ctx) const { EVP_MD_CTX_free(ctx); }

Result<Sha256> Sha256::start(std::string what) {
  std::unique_ptr<evp_md_ctx_st, Free> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return Status(Code::kINTERNAL, "sha256 of " + what + ": OpenSSL could not start a digest");
  return Sha256(std::move(ctx), std::move(what));
}

void Sha256::update(const void* data, size_t n) { EVP_DigestUpdate(ctx_.get(), data, n); }

Result<std::string> Sha256::finish() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1)
    return Status(Code::kINTERNAL, "sha256 of " + what_ + ": OpenSSL could not finish the digest");
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; i++) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace obd
