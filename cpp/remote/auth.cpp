// Auth discovery and tokens (§6.1): the RegistryCore side of a blob read.
#include <algorithm>

#include "remote/base64.h"
#include "remote/json.h"
#include "remote/registry_core.h"
#include "remote/url.h"

namespace obd::remote {

namespace {

constexpr std::chrono::seconds kMinTokenLife{30};
constexpr std::chrono::seconds kDefaultTokenLife{60};  // distribution spec: expires_in default

std::string status_message(long status) { return "HTTP " + std::to_string(status); }

std::string basic(const Credential& c) { return "Authorization: Basic " + base64_encode(c.username + ":" + c.password); }

std::string token_key(const Challenge& c) { return c.realm + "|" + c.service + "|" + c.scope; }

}  // namespace

Code http_status_code(long status) {
  switch (status) {
    case 401:
    case 403:
      return Code::kEPERM;
    case 404:
      return Code::kENOENT;
    case 429:
      return Code::kEBUSY;
    default:
      return Code::kEIO;
  }
}

Result<std::shared_ptr<const Resolved>> RegistryCore::resolve(const std::string& url, Clock::time_point deadline) {
  {
    std::lock_guard lock(mu_);
    auto it = resolved_.find(url);
    if (it != resolved_.end()) return it->second;
  }
  // Two threads may discover the same URL at once; both answers are good.
  OBD_ASSIGN_OR_RETURN(auto r, discover(url, deadline));
  std::lock_guard lock(mu_);
  resolved_[url] = r;
  return r;
}

void RegistryCore::invalidate(const std::string& url, bool auth_too) {
  std::shared_ptr<const Resolved> r;
  {
    std::lock_guard lock(mu_);
    auto it = resolved_.find(url);
    if (it == resolved_.end()) return;
    r = it->second;
    resolved_.erase(it);
  }
  if (auth_too && r->challenge && r->challenge->scheme == Challenge::Scheme::kBearer) tokens_.drop(token_key(*r->challenge));
}

Result<std::string> RegistryCore::auth_header(const Resolved& r, const std::string& url, Clock::time_point deadline) {
  if (r.redirected || !r.challenge) return std::string();
  if (r.challenge->scheme == Challenge::Scheme::kBasic) return r.basic_header;
  OBD_ASSIGN_OR_RETURN(std::string token, bearer_token(*r.challenge, url, deadline));
  return "Authorization: Bearer " + token;
}

Result<std::string> RegistryCore::bearer_token(const Challenge& c, const std::string& url, Clock::time_point deadline) {
  std::string key = token_key(c);
  if (auto t = tokens_.get(key)) return *t;
  std::optional<Credential> cred;
  if (creds) {
    auto found = creds->lookup(url);
    if (!found) return found.status();
    cred = *found;
  }
  HttpRequest req;
  req.url = c.realm;
  char sep = c.realm.find('?') == std::string::npos ? '?' : '&';
  if (!c.service.empty()) {
    req.url += sep + ("service=" + url_encode(c.service));
    sep = '&';
  }
  if (!c.scope.empty()) req.url += sep + ("scope=" + url_encode(c.scope));
  if (cred && !cred->username.empty()) req.headers.push_back(basic(*cred));
  req.deadline = deadline;
  OBD_ASSIGN_OR_RETURN(HttpResponse resp, http->get(req));
  std::string who = cred ? "user " + cred->username : "anonymous";
  if (resp.status != 200) {
    Code code = resp.status == 401 || resp.status == 403 ? Code::kEPERM : http_status_code(resp.status);
    return Status(code, "token server " + c.realm + " refused " + who + " for scope '" + c.scope + "': " +
                            status_message(resp.status));
  }
  auto doc = parse_json(resp.body, "token server " + c.realm);
  if (!doc) return Status(Code::kEIO, doc.status().message());
  const JsonValue* tok = doc->get("token");
  if (!tok || !tok->is_string() || tok->string.empty()) tok = doc->get("access_token");
  if (!tok || !tok->is_string() || tok->string.empty()) {
    return Status(Code::kEIO, "token server " + c.realm + ": answer has no token or access_token");
  }
  std::chrono::seconds ttl = kDefaultTokenLife;
  const JsonValue* exp = doc->get("expires_in");
  if (exp && exp->kind == JsonValue::Kind::kNumber && exp->number > 0 && exp->number < 1e9) {
    ttl = std::chrono::seconds(uint64_t(exp->number));
  }
  tokens_.put(key, tok->string, std::max(ttl, kMinTokenLife));
  return tok->string;
}

Result<std::shared_ptr<const Resolved>> RegistryCore::discover(const std::string& url, Clock::time_point deadline) {
  auto r = std::make_shared<Resolved>();
  HttpRequest req;
  req.url = url;
  req.range = {{0, 0}};
  req.deadline = deadline;
  // Only status and headers matter; a registry that ignores Range must not
  // make us download the blob (stopping closes that connection).
  size_t seen = 0;
  req.on_body = [&seen](const HttpResponse&, const char*, size_t n) { return (seen += n) <= 65536; };
  OBD_ASSIGN_OR_RETURN(HttpResponse resp, http->get(req));
  std::string auth;
  if (resp.status == 401 || resp.status == 403) {
    // A server may offer several challenges; Bearer is preferred to Basic.
    std::optional<Challenge> c;
    std::string offered;
    for (const auto& [name, value] : resp.headers) {
      if (name != "www-authenticate") continue;
      offered += (offered.empty() ? "" : "; ") + value;
      std::optional<Challenge> one = parse_challenge(value);
      if (one && (!c || one->scheme == Challenge::Scheme::kBearer)) c = one;
    }
    if (!c) {
      return Status(Code::kEPERM, status_message(resp.status) + " without a Basic or Bearer challenge" +
                                      (offered.empty() ? "" : " (WWW-Authenticate: " + offered + ")"));
    }
    r->challenge = c;
    if (c->scheme == Challenge::Scheme::kBasic) {
      std::optional<Credential> cred;
      if (creds) {
        auto found = creds->lookup(url);
        if (!found) return found.status();
        cred = *found;
      }
      if (!cred) return Status(Code::kEPERM, "registry asks for Basic auth and no credentials match");
      r->basic_header = basic(*cred);
    }
    OBD_ASSIGN_OR_RETURN(auth, auth_header(*r, url, deadline));
    req.headers = {auth};
    OBD_ASSIGN_OR_RETURN(resp, http->get(req));
    if (resp.status == 401 || resp.status == 403) {
      // A stale token must not outlive this answer.
      if (c->scheme == Challenge::Scheme::kBearer) tokens_.drop(token_key(*c));
      return Status(Code::kEPERM, status_message(resp.status) + " with credentials");
    }
  }
  if (resp.status >= 300 && resp.status < 400) {
    const std::string* loc = resp.header("location");
    std::optional<std::string> target = loc ? resolve_url(url, *loc) : std::nullopt;
    if (!target) return Status(Code::kEIO, status_message(resp.status) + " without a usable Location");
    r->data_url = *target;
    r->redirected = true;
    return std::shared_ptr<const Resolved>(r);
  }
  if (resp.status == 200 || resp.status == 206) {
    r->data_url = url;
    return std::shared_ptr<const Resolved>(r);
  }
  return Status(http_status_code(resp.status), status_message(resp.status) + " on auth discovery");
}

}  // namespace obd::remote
