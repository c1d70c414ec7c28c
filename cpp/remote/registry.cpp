#include "remote/registry.h"

#include "remote/registry_core.h"

namespace obd::remote {

Result<std::shared_ptr<Registry>> Registry::create(RegistryOptions o, CredentialProviderPtr creds,
                                                   std::shared_ptr<FetchObserver> observer) {
  while (!o.p2p_address.empty() && o.p2p_address.back() == '/') o.p2p_address.pop_back();
  if (!o.p2p_address.empty() && !o.p2p_address.starts_with("http://") && !o.p2p_address.starts_with("https://")) {
    return Status(Code::kEINVAL, "p2pConfig.address " + o.p2p_address + ": not an http(s) URL");
  }
  if (o.read_timeout_ms == 0) return Status(Code::kEINVAL, "registry read timeout must be above 0 ms");
  TlsFiles tls{o.ca_file, o.cert_file, o.key_file};
  OBD_ASSIGN_OR_RETURN(auto http, HttpClient::create(tls, o.user_agent, o.connect_timeout_ms));
  bool p2p = !o.p2p_address.empty() && http->reachable(o.p2p_address, o.connect_timeout_ms);
  auto core = std::make_shared<RegistryCore>(std::move(o), std::move(creds), std::move(observer), std::move(http), p2p);
  return std::make_shared<Registry>(std::move(core));
}

Result<FilePtr> Registry::open_blob(const std::string& repo_blob_url, const std::string& digest,
                                    uint64_t expected_size) {
  std::string base = repo_blob_url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  if (!base.starts_with("http://") && !base.starts_with("https://")) {
    return Status(Code::kEINVAL, digest + ": repoBlobUrl " + repo_blob_url + " is not an http(s) URL");
  }
  if (digest.empty() || digest.find('/') != std::string::npos) {
    return Status(Code::kEINVAL, "blob digest '" + digest + "' is not a digest");
  }
  // A caller holding the whole blob URL (layer::LayerRef::url) may pass it as is.
  std::string url = base.ends_with("/" + digest) ? base : base + "/" + digest;
  return open_blob_file(core_, std::move(url), digest, expected_size);
}

bool Registry::p2p_active() const { return core_->p2p; }

}  // namespace obd::remote
