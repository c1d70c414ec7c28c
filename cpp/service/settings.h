// What the image service is told by the global config (overlaybd.json,
// §5.2), already validated and normalised by lib/service/global-config.ts.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cache/cache.h"
#include "download/downloader.h"
#include "io/file.h"
#include "remote/credentials.h"
#include "remote/registry.h"

namespace obd::service {

struct Settings {
  bool use_cache = true;             // cacheType file; "download" reads remote blobs uncached
  cache::CacheOptions cache;
  IoEngine engine = default_io_engine();
  std::string credential_file;       // credentialConfig file mode / credentialFilePath
  std::optional<remote::CredentialServer> credential_server;
  std::vector<std::pair<std::string, remote::Credential>> auths;  // docker config.json, helpers
  remote::RegistryOptions registry;  // user agent, TLS, P2P, retries, time limit
  bool download_enable = false;
  download::DownloadOptions download;
  unsigned prefetch_concurrency = 16;
  bool audit_enable = false;
  std::string audit_path;
};

}  // namespace obd::service
