// Registry blob reads (§6.1): a File whose reads are HTTP range GETs against
// an OCI registry, with auth discovery (Basic, Bearer tokens), redirects to
// blob storage, bounded retries and an optional P2P proxy. The data path is
// native end to end: no read waits on JavaScript.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "io/file.h"
#include "remote/credentials.h"

namespace obd::remote {

struct RegistryOptions {
  std::string user_agent = "overlaybd/0.1.0";
  std::string ca_file;              // extra CA bundle (PEM) for https
  std::string cert_file, key_file;  // certConfig: TLS client cert
  std::string p2p_address;          // p2pConfig.address when enabled ("" = off)
  uint32_t retries = 3;             // tries per read, §6.1 (0 counts as 1)
  uint32_t retry_pause_ms = 1;
  uint32_t read_timeout_ms = 30000;  // overall limit for one read, all retries included
  uint32_t connect_timeout_ms = 5000;
};

// One HTTP attempt of a read (or of open's size fetch).
struct FetchEvent {
  const std::string* digest;
  uint64_t offset, length, bytes;
  uint64_t latency_us;
  long http_status;  // 0 when no response arrived
  uint32_t attempt;  // 1-based within the read
  bool ok;
  bool p2p;
};

class FetchObserver {
 public:
  virtual ~FetchObserver() = default;
  virtual void on_fetch(const FetchEvent&) = 0;  // called on the fetching thread; must not block
};

class RegistryCore;

// One per service: connection pool, token cache, resolved-URL cache. Thread-safe.
class Registry {
 public:
  static Result<std::shared_ptr<Registry>> create(RegistryOptions, CredentialProviderPtr,
                                                  std::shared_ptr<FetchObserver> = nullptr);
  // A File over `repo_blob_url` + "/" + digest (repo_blob_url is config.v1.json's
  // repoBlobUrl; a URL already ending in "/" + digest is taken as is).
  // Without `expected_size` (0), opening fetches the size with Range:
  // bytes=0-0 (within the retry and time limits of a read) after auth
  // discovery. With it, opening asks nothing, so an image whose reads the
  // cache holds opens with the registry down; the first read that reaches
  // the registry does that check, and a different size fails it (and every
  // later read) with EINVAL naming both. The File is safe to read from many
  // threads at once; it keeps the registry's state alive.
  Result<FilePtr> open_blob(const std::string& repo_blob_url, const std::string& digest, uint64_t expected_size);
  // True when p2p_address was set and was TCP-reachable at create; data URLs
  // then become <p2p_address>/<actual url> and the caller bypasses its cache.
  bool p2p_active() const;

  explicit Registry(std::shared_ptr<RegistryCore> core) : core_(std::move(core)) {}

 private:
  std::shared_ptr<RegistryCore> core_;
};

}  // namespace obd::remote
