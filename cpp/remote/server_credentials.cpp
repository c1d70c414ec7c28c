// §5.2 http/https/uds credential servers.
#include <mutex>

#include "remote/credential_match.h"
#include "remote/credentials.h"
#include "remote/http_client.h"
#include "remote/url.h"

namespace obd::remote {

namespace {

class ServerCredentials final : public CredentialProvider {
 public:
  explicit ServerCredentials(CredentialServer cfg) : cfg_(std::move(cfg)) {
    tls_.ca_file = cfg_.server_ca;
    tls_.cert_file = cfg_.client_cert;
    tls_.key_file = cfg_.client_key;
  }

  Result<std::optional<Credential>> lookup(const std::string& blob_url) override {
    std::string what = "credential server " + cfg_.mode + " " + cfg_.path;
    HttpRequest req;
    if (cfg_.mode == "uds") {
      req.url = "http://localhost/auth?remote_url=" + url_encode(blob_url);
      req.unix_socket = cfg_.path;
    } else if (cfg_.mode == "http" || cfg_.mode == "https") {
      req.url = cfg_.path + (cfg_.path.find('?') == std::string::npos ? "?" : "&") + "remote_url=" + url_encode(blob_url);
      if ((cfg_.mode == "https") != cfg_.path.starts_with("https://")) {
        return Status(Code::kEIO, what + ": mode " + cfg_.mode + " does not match the URL's scheme");
      }
    } else {
      return Status(Code::kEIO, what + ": unknown credentialConfig.mode (http, https or uds)");
    }
    // §5.2: the timeout defaults to 1 s; 0 (unset in a config) means that too.
    req.deadline = Clock::now() + std::chrono::milliseconds(cfg_.timeout_ms ? cfg_.timeout_ms : 1000);
    req.tls = &tls_;
    OBD_ASSIGN_OR_RETURN(auto c, client());
    auto resp = c->get(req);
    if (!resp) return resp.status().with_context(what);
    if (resp->status != 200) {
      return Status(Code::kEIO, what + ": HTTP " + std::to_string(resp->status) + " for " + blob_url);
    }
    auto doc = parse_json(resp->body, what);
    if (!doc) return Status(Code::kEIO, doc.status().message());
    const JsonValue* ok = doc->get("success");
    if (!ok || ok->kind != JsonValue::Kind::kBool || !ok->boolean) {
      return Status(Code::kEIO, what + ": answer for " + blob_url + " is not \"success\": true");
    }
    const JsonValue* data = doc->get("data");
    const JsonValue* auths = data ? data->get("auths") : nullptr;
    if (!auths) return Status(Code::kEIO, what + ": answer has no data.auths");
    return match_auths(*auths, blob_url, what);
  }

 private:
  // Made on first use so that constructing a provider never fails.
  Result<std::shared_ptr<HttpClient>> client() {
    std::lock_guard lock(mu_);
    if (!client_) {
      auto c = HttpClient::create(tls_, "overlaybd-credentials", cfg_.timeout_ms);
      if (!c) return c.status();
      client_ = *c;
    }
    return client_;
  }

  const CredentialServer cfg_;
  TlsFiles tls_;
  std::mutex mu_;
  std::shared_ptr<HttpClient> client_;
};

}  // namespace

CredentialProviderPtr server_credentials(CredentialServer cfg) {
  return std::make_shared<ServerCredentials>(std::move(cfg));
}

}  // namespace obd::remote
