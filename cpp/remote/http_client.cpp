#include "remote/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <array>
#include <cctype>

namespace obd::remote {

namespace {

// Idle handles kept beyond this are closed (each may hold connections).
constexpr size_t kMaxIdle = 64;

Status global_init() {
  static CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);  // once, thread-safe static init
  if (rc != CURLE_OK) return Status(Code::kEIO, std::string("curl_global_init: ") + curl_easy_strerror(rc));
  return Status::ok();
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

struct Transfer {
  const HttpRequest* req;
  HttpResponse resp;
  bool too_long = false;
};

size_t on_header(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    // A new response (an interim 1xx or the final one): start over.
    t->resp.headers.clear();
    size_t sp = line.find(' ');
    t->resp.status = sp == std::string_view::npos ? 0 : std::atol(std::string(line.substr(sp + 1, 3)).c_str());
    return size * n;
  }
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name = trim(line.substr(0, colon));
    std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
    t->resp.headers.emplace_back(std::move(name), trim(line.substr(colon + 1)));
  }
  return size * n;
}

size_t on_data(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  size_t len = size * n;
  if (t->req->on_body) {
    if (!t->req->on_body(t->resp, data, len)) {
      t->resp.stopped = true;
      return CURL_WRITEFUNC_ERROR;
    }
    return len;
  }
  if (t->resp.body.size() + len > t->req->max_kept_body) {
    t->too_long = true;
    return CURL_WRITEFUNC_ERROR;
  }
  t->resp.body.append(data, len);
  return len;
}

long remaining_ms(Clock::time_point deadline) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return ms;
}

}  // namespace

const std::string* HttpResponse::header(std::string_view name) const {
  for (const auto& [k, v] : headers) {
    if (k == name) return &v;
  }
  return nullptr;
}

// DNS cache and TLS sessions shared by all handles of a client.
struct HttpClient::Share {
  CURLSH* sh = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
    static_cast<Share*>(self)->locks[data].lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* self) { static_cast<Share*>(self)->locks[data].unlock(); }

  ~Share() {
    if (sh) curl_share_cleanup(sh);
  }
};

HttpClient::HttpClient(TlsFiles tls, std::string user_agent, uint32_t connect_timeout_ms)
    : tls_(std::move(tls)), user_agent_(std::move(user_agent)), connect_timeout_ms_(connect_timeout_ms) {}

Result<std::shared_ptr<HttpClient>> HttpClient::create(TlsFiles tls, std::string user_agent,
                                                       uint32_t connect_timeout_ms) {
  OBD_TRY(global_init());
  std::shared_ptr<HttpClient> c(new HttpClient(std::move(tls), std::move(user_agent), connect_timeout_ms));
  c->share_ = std::make_unique<Share>();
  Share* s = c->share_.get();
  s->sh = curl_share_init();
  if (!s->sh) return Status(Code::kEIO, "curl_share_init failed");
  curl_share_setopt(s->sh, CURLSHOPT_LOCKFUNC, &Share::lock);
  curl_share_setopt(s->sh, CURLSHOPT_UNLOCKFUNC, &Share::unlock);
  curl_share_setopt(s->sh, CURLSHOPT_USERDATA, s);
  curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
  curl_share_setopt(s->sh, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  return c;
}

HttpClient::~HttpClient() {
  // Handles go before the share they point at.
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
  idle_.clear();
}

void* HttpClient::acquire() {
  {
    std::lock_guard lock(pool_mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void HttpClient::release(void* h) {
  {
    std::lock_guard lock(pool_mu_);
    if (idle_.size() < kMaxIdle) {
      idle_.push_back(h);
      return;
    }
  }
  curl_easy_cleanup(static_cast<CURL*>(h));
}

Result<HttpResponse> HttpClient::get(const HttpRequest& req) {
  long left = remaining_ms(req.deadline);
  if (left <= 0) return Status(Code::kETIMEDOUT, "GET " + req.url + ": no time left");
  CURL* h = static_cast<CURL*>(acquire());
  if (!h) return Status(Code::kEIO, "GET " + req.url + ": curl_easy_init failed");
  // reset keeps the handle's connections and caches, drops every option.
  curl_easy_reset(h);
  Transfer t{&req, {}};
  char errbuf[CURL_ERROR_SIZE] = {0};
  const TlsFiles& tls = req.tls ? *req.tls : tls_;
  curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SHARE, share_->sh);
  curl_easy_setopt(h, CURLOPT_HTTP_VERSION, CURL_HTTP_VERSION_1_1);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, left);
  // 0 would mean curl's default (300 s): the deadline bounds connecting too.
  long connect_ms = connect_timeout_ms_ ? std::min<long>(left, connect_timeout_ms_) : left;
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
  curl_easy_setopt(h, CURLOPT_USERAGENT, user_agent_.c_str());
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &on_data);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  if (!req.unix_socket.empty()) curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, req.unix_socket.c_str());
  if (!tls.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, tls.ca_file.c_str());
  if (!tls.cert_file.empty()) curl_easy_setopt(h, CURLOPT_SSLCERT, tls.cert_file.c_str());
  if (!tls.key_file.empty()) curl_easy_setopt(h, CURLOPT_SSLKEY, tls.key_file.c_str());
  std::string range;
  if (req.range) {
    range = std::to_string(req.range->first) + "-" + std::to_string(req.range->second);
    curl_easy_setopt(h, CURLOPT_RANGE, range.c_str());
  }
  curl_slist* headers = nullptr;
  for (const std::string& hd : req.headers) headers = curl_slist_append(headers, hd.c_str());
  if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  release(h);

  if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && t.resp.stopped)) return std::move(t.resp);
  std::string what = "GET " + req.url + ": ";
  if (t.too_long) return Status(Code::kEIO, what + "response body longer than " + std::to_string(req.max_kept_body));
  std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  if (rc == CURLE_OPERATION_TIMEDOUT) return Status(Code::kETIMEDOUT, what + why);
  return Status(Code::kEIO, what + why);
}

bool HttpClient::reachable(const std::string& url, uint32_t timeout_ms) {
  CURL* h = curl_easy_init();
  if (!h) return false;
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECT_ONLY, 1L);
  long ms = std::max<long>(1, timeout_ms);  // 0 would mean no limit
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, ms);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, ms);
  // A TCP connection is the question; the proxy's certificate is checked by reads.
  if (url.starts_with("https://")) {
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  bool ok = curl_easy_perform(h) == CURLE_OK;
  curl_easy_cleanup(h);
  return ok;
}

}  // namespace obd::remote
