// Where registry credentials come from (§5.2 credentialConfig): a cred.json
// file, a credential server (http, https, unix socket), entries handed down
// by TypeScript (docker config, credential helpers), or a chain of those.
// Every source matches a blob URL the same way (credential_match.h).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace obd::remote {

struct Credential {
  std::string username, password;
};

class CredentialProvider {  // thread-safe
 public:
  virtual ~CredentialProvider() = default;
  // Credentials for a blob URL, or nullopt; an error only if the provider
  // itself failed (EIO/ETIMEDOUT).
  virtual Result<std::optional<Credential>> lookup(const std::string& blob_url) = 0;
};
using CredentialProviderPtr = std::shared_ptr<CredentialProvider>;

// §5.2 file mode: {"auths": {"<prefix>": {"username","password"} | {"auth": base64}}}.
// A missing file means no credentials; the file is re-read when it changes
// (inode, size or mtime).
CredentialProviderPtr file_credentials(std::string path);

// §5.2 http/https/uds modes: GET <path>?remote_url=<blob url> (uds: `path`
// is the socket, the request http://localhost/auth?remote_url=...), answer
// {"traceId","success":true,"data":{"auths":{...}}}. https may present a
// client certificate and trust `server_ca`.
struct CredentialServer {
  std::string mode, path;
  uint32_t timeout_ms = 1000;
  std::string client_cert, client_key, server_ca;
};
CredentialProviderPtr server_credentials(CredentialServer);

// Entries in match order (first equal key wins).
CredentialProviderPtr static_credentials(std::vector<std::pair<std::string, Credential>> auths);

// Asks each provider in turn; the first that has credentials answers. A
// provider's error is returned only when no later provider answers.
CredentialProviderPtr chain_credentials(std::vector<CredentialProviderPtr>);

}  // namespace obd::remote
