// One blocking HTTP/1.1 GET over libcurl, for the registry data path and its
// auth side requests. Never follows redirects (the caller decides), never
// asks for compression (ranges must be byte-exact), always bounded by a
// deadline. Thread-safe: easy handles come from a pool, so each keeps its
// keep-alive connections between requests; DNS and TLS sessions are shared
// through a CURLSH with a lock per data kind. Connections themselves are not
// put in the share: libcurl 7.88 documents its shared connection cache as
// unsafe across threads (known bug 11.11).
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace obd::remote {

using Clock = std::chrono::steady_clock;

struct TlsFiles {
  std::string ca_file;              // extra CA bundle (PEM); "" = system CAs only
  std::string cert_file, key_file;  // client certificate
};

struct HttpResponse {
  long status = 0;
  // Header names lowercased, values trimmed, in arrival order (of the final response).
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;      // kept only when the request has no on_body
  bool stopped = false;  // on_body ended the transfer early
  const std::string* header(std::string_view lowercase_name) const;
};

struct HttpRequest {
  std::string url;
  std::vector<std::string> headers;                      // "Name: value"
  std::optional<std::pair<uint64_t, uint64_t>> range;    // inclusive first-last
  Clock::time_point deadline;
  std::string unix_socket;                               // "" = TCP
  const TlsFiles* tls = nullptr;                         // overrides the client's own
  // Receives the body as it arrives (status and headers are complete by
  // then); returning false ends the transfer, which is not an error.
  std::function<bool(const HttpResponse&, const char*, size_t)> on_body;
  size_t max_kept_body = 1 << 20;  // without on_body: longer bodies fail with EIO
};

class HttpClient {
 public:
  static Result<std::shared_ptr<HttpClient>> create(TlsFiles tls, std::string user_agent, uint32_t connect_timeout_ms);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Any HTTP status is a response. Transport failures: ETIMEDOUT at the
  // deadline, EIO otherwise, with curl's words and the URL.
  Result<HttpResponse> get(const HttpRequest& req);

  // True if a TCP connection to the URL's host and port opens in time.
  bool reachable(const std::string& url, uint32_t timeout_ms);

 private:
  HttpClient(TlsFiles tls, std::string user_agent, uint32_t connect_timeout_ms);
  void* acquire();
  void release(void* easy);

  struct Share;
  const TlsFiles tls_;
  const std::string user_agent_;
  const uint32_t connect_timeout_ms_;
  std::unique_ptr<Share> share_;
  std::mutex pool_mu_;
  std::vector<void*> idle_;  // CURL* easy handles, most recently used last
};

}  // namespace obd::remote
