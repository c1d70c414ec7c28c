#include "remote/url.h"

#include <curl/curl.h>

namespace obd::remote {

std::string url_encode(std::string_view s) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
        c == '_' || c == '~') {
      out += char(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::optional<std::string> resolve_url(const std::string& base, const std::string& location) {
  CURLU* u = curl_url();
  if (!u) return std::nullopt;
  std::optional<std::string> out;
  // Setting a relative URL on a handle holding `base` resolves it (RFC 3986).
  if (curl_url_set(u, CURLUPART_URL, base.c_str(), 0) == CURLUE_OK &&
      curl_url_set(u, CURLUPART_URL, location.c_str(), 0) == CURLUE_OK) {
    char* s = nullptr;
    if (curl_url_get(u, CURLUPART_URL, &s, 0) == CURLUE_OK) {
      out = s;
      curl_free(s);
    }
  }
  curl_url_cleanup(u);
  return out;
}

std::string url_origin(std::string_view url) {
  size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return "";
  size_t end = url.find('/', scheme + 3);
  return std::string(url.substr(0, end));
}

std::vector<std::string> credential_candidates(std::string_view blob_url) {
  std::vector<std::string> out;
  size_t scheme = blob_url.find("://");
  std::string_view rest = scheme == std::string_view::npos ? blob_url : blob_url.substr(scheme + 3);
  size_t slash = rest.find('/');
  std::string host(rest.substr(0, slash));
  if (host.empty()) return out;
  out.push_back(host);
  if (slash == std::string_view::npos) return out;
  std::string_view path = rest.substr(slash);
  if (!path.starts_with("/v2/")) return out;
  path.remove_prefix(4);
  size_t blobs = path.rfind("/blobs/");
  if (blobs != std::string_view::npos) path = path.substr(0, blobs);
  std::string prefix = host;
  size_t pos = 0;
  while (pos < path.size()) {
    size_t next = path.find('/', pos);
    std::string_view part = path.substr(pos, next == std::string_view::npos ? std::string_view::npos : next - pos);
    if (!part.empty()) {
      prefix += '/';
      prefix += part;
      out.push_back(prefix);
    }
    if (next == std::string_view::npos) break;
    pos = next + 1;
  }
  return out;
}

}  // namespace obd::remote
