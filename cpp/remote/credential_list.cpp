// Credentials handed down by TypeScript, and chains of providers.
#include "remote/credential_match.h"
#include "remote/credentials.h"

namespace obd::remote {

namespace {

class StaticCredentials final : public CredentialProvider {
 public:
  explicit StaticCredentials(std::vector<std::pair<std::string, Credential>> auths) : auths_(std::move(auths)) {
    for (const auto& a : auths_) keys_.push_back(a.first);
  }
  Result<std::optional<Credential>> lookup(const std::string& blob_url) override {
    std::optional<size_t> i = match_key(keys_, blob_url);
    if (!i) return std::optional<Credential>();
    return std::optional<Credential>(auths_[*i].second);
  }

 private:
  const std::vector<std::pair<std::string, Credential>> auths_;
  std::vector<std::string> keys_;
};

class ChainCredentials final : public CredentialProvider {
 public:
  explicit ChainCredentials(std::vector<CredentialProviderPtr> chain) : chain_(std::move(chain)) {}
  Result<std::optional<Credential>> lookup(const std::string& blob_url) override {
    Status first_error;
    for (const auto& p : chain_) {
      if (!p) continue;
      auto r = p->lookup(blob_url);
      if (!r) {
        if (first_error.is_ok()) first_error = r.status();
        continue;
      }
      if (r.value()) return r;
    }
    if (!first_error.is_ok()) return first_error;
    return std::optional<Credential>();
  }

 private:
  const std::vector<CredentialProviderPtr> chain_;
};

}  // namespace

CredentialProviderPtr static_credentials(std::vector<std::pair<std::string, Credential>> auths) {
  return std::make_shared<StaticCredentials>(std::move(auths));
}

CredentialProviderPtr chain_credentials(std::vector<CredentialProviderPtr> chain) {
  return std::make_shared<ChainCredentials>(std::move(chain));
}

}  // namespace obd::remote
