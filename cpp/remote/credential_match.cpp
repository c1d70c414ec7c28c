#include "remote/credential_match.h"

#include "remote/base64.h"
#include "remote/url.h"

namespace obd::remote {

std::optional<size_t> match_key(const std::vector<std::string>& keys, const std::string& blob_url) {
  std::vector<std::string> candidates = credential_candidates(blob_url);
  for (size_t i = 0; i < keys.size(); i++) {
    for (const std::string& c : candidates) {
      if (keys[i] == c) return i;
    }
  }
  return std::nullopt;
}

Result<std::optional<Credential>> match_auths(const JsonValue& auths, const std::string& blob_url,
                                              const std::string& what) {
  if (!auths.is_object()) return Status(Code::kEIO, what + ": \"auths\" is not an object");
  std::vector<std::string> keys;
  for (const auto& [k, v] : auths.members) keys.push_back(k);
  std::optional<size_t> i = match_key(keys, blob_url);
  if (!i) return std::optional<Credential>();
  const std::string& key = auths.members[*i].first;
  const JsonValue& entry = auths.members[*i].second;
  const JsonValue* user = entry.get("username");
  const JsonValue* pass = entry.get("password");
  if (user && user->is_string() && !user->string.empty()) {
    return std::optional<Credential>(Credential{user->string, pass && pass->is_string() ? pass->string : ""});
  }
  const JsonValue* auth = entry.get("auth");
  if (auth && auth->is_string() && !auth->string.empty()) {
    std::optional<std::string> plain = base64_decode(auth->string);
    size_t colon = plain ? plain->find(':') : std::string::npos;
    if (colon == std::string::npos) {
      return Status(Code::kEIO, what + ": auths[\"" + key + "\"].auth is not base64 of user:password");
    }
    return std::optional<Credential>(Credential{plain->substr(0, colon), plain->substr(colon + 1)});
  }
  return Status(Code::kEIO, what + ": auths[\"" + key + "\"] has neither username nor auth");
}

Result<std::optional<Credential>> match_auths_document(std::string_view json, const std::string& blob_url,
                                                       const std::string& what) {
  auto doc = parse_json(json, what);
  if (!doc) return Status(Code::kEIO, doc.status().message());
  const JsonValue* auths = doc->get("auths");
  if (!auths) return Status(Code::kEIO, what + ": no \"auths\" object");
  return match_auths(*auths, blob_url, what);
}

}  // namespace obd::remote
