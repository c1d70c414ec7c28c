// sha256 over OpenSSL's EVP, finished as OCI names a digest:
// "sha256:<64 lowercase hex>". One helper for every digest the core checks.
#pragma once
#include <cstddef>
#include <memory>
#include <string>

#include "common/status.h"

struct evp_md_ctx_st;  // OpenSSL's EVP_MD_CTX, kept out of this header

namespace obd {

class Sha256 {
 public:
  // `what` names the hashed data in errors.
  static Result<Sha256> start(std::string what);
  void update(const void* data, size_t n);
  // "sha256:<hex>" of everything given to update().
  Result<std::string> finish();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const;
  };
  Sha256(std::unique_ptr<evp_md_ctx_st, Free> ctx, std::string what) : ctx_(std::move(ctx)), what_(std::move(what)) {}

  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
  std::string what_;
};

}  // namespace obd
