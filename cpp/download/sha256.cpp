#include "download/sha256.h"

#include <openssl/evp.h>

#include <algorithm>
#include <memory>
#include <vector>

namespace obd::download {

Result<std::string> sha256_digest(File& file, size_t chunk, const std::function<bool()>& keep_going) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1)
    return Status(Code::kINTERNAL, "sha256 of " + file.name() + ": OpenSSL could not start a digest");
  OBD_ASSIGN_OR_RETURN(uint64_t size, file.size());
  std::vector<uint8_t> buf(std::max<size_t>(chunk, 1));
  for (uint64_t off = 0; off < size;) {
    if (keep_going && !keep_going()) return Status(Code::kCLOSED, "sha256 of " + file.name() + ": stopped");
    size_t n = size_t(std::min<uint64_t>(buf.size(), size - off));
    OBD_TRY(file.read_exact(buf.data(), n, off, Code::kEIO, "data to hash"));
    EVP_DigestUpdate(ctx.get(), buf.data(), n);
    off += n;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx.get(), md, &len) != 1)
    return Status(Code::kINTERNAL, "sha256 of " + file.name() + ": OpenSSL could not finish the digest");
  static const char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned i = 0; i < len; i++) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

}  // namespace obd::download
