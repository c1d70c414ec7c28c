// The state a Registry shares with its blob Files (internal to obd_remote):
// the HTTP client, the credential provider, the token and resolved-URL
// caches, and auth discovery (§6.1).
#pragma once
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "remote/credentials.h"
#include "remote/http_client.h"
#include "remote/http_headers.h"
#include "remote/registry.h"
#include "remote/token_cache.h"

namespace obd::remote {

// Where the data of one blob URL is read from, found by auth discovery.
struct Resolved {
  std::string data_url;   // the Location of a redirect, or the blob URL itself
  bool redirected = false;
  std::optional<Challenge> challenge;  // how the blob URL itself authenticates (not redirected)
  std::string basic_header;            // "Authorization: Basic ..." for a Basic challenge
};

// The error code for an HTTP status that is not a success (§6.1).
Code http_status_code(long status);

class RegistryCore {
 public:
  RegistryCore(RegistryOptions o, CredentialProviderPtr creds, std::shared_ptr<FetchObserver> observer,
               std::shared_ptr<HttpClient> http, bool p2p)
      : options(std::move(o)), creds(std::move(creds)), observer(std::move(observer)), http(std::move(http)),
        p2p(p2p) {}

  // Cached discovery of `url`: GET Range 0-0 without auth and without
  // redirects; on 401/403 answer the challenge and GET again authorised.
  Result<std::shared_ptr<const Resolved>> resolve(const std::string& url, Clock::time_point deadline);
  // The Authorization header for reads of the blob URL itself ("" = none).
  Result<std::string> auth_header(const Resolved& r, const std::string& url, Clock::time_point deadline);
  // After a failed read: forget the resolved URL; `auth_too` also drops the
  // token of its scope, so the next try authenticates afresh.
  void invalidate(const std::string& url, bool auth_too);

  const RegistryOptions options;
  const CredentialProviderPtr creds;
  const std::shared_ptr<FetchObserver> observer;
  const std::shared_ptr<HttpClient> http;
  const bool p2p;

 private:
  Result<std::string> bearer_token(const Challenge& c, const std::string& url, Clock::time_point deadline);
  Result<std::shared_ptr<const Resolved>> discover(const std::string& url, Clock::time_point deadline);

  TokenCache tokens_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<const Resolved>> resolved_;
};

// The blob File (blob_file.cpp).
Result<FilePtr> open_blob_file(std::shared_ptr<RegistryCore> core, std::string url, std::string digest,
                               uint64_t expected_size);

}  // namespace obd::remote
