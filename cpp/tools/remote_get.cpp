// remote_get: opens one registry blob through obd::remote and reads byte
// ranges, printing JSON lines for tests:
//   {"op":"open","ok":true,"size":N,"p2p":false,"ms":T}
//   {"op":"read","off":O,"len":L,"ok":true,"bytes":N,"sha256":"..","ms":T}
//   {"op":"read",...,"ok":false,"code":"EIO","message":".."}
//   {"op":"fetch",...}  (with --events: every HTTP attempt, as it ends)
// Exit 0 once the lines are out (failures are lines too); 2 on bad usage.
//
//   remote_get --url REPO_BLOB_URL --digest DIGEST [--size N] [--ca PEM]
//     [--cert PEM --key PEM] [--cred-file PATH] [--auth PREFIX=USER:PASS]...
//     [--cred-server MODE,PATH [--cred-server-ca PEM] [--cred-server-cert PEM
//     --cred-server-key PEM] [--cred-server-timeout-ms N]] [--p2p ADDRESS]
//     [--timeout-ms N] [--connect-timeout-ms N] [--retries N]
//     [--retry-pause-ms N] [--user-agent UA] [--threads N] [--events]
//     OFF:LEN...
#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/sha256.h"
#include "remote/credentials.h"
#include "remote/registry.h"
#include "tools/json_out.h"

using namespace obd;
using namespace obd::remote;

namespace {

std::mutex out_mu;


// Bare hex, as the tool has always printed it.
std::string sha256_hex(const uint8_t* p, size_t n) {
  Result<Sha256> hash = Sha256::start("the fetched bytes");
  if (!hash) return "";
  hash->update(p, n);
  Result<std::string> digest = hash->finish();
  return digest ? digest->substr(sizeof "sha256:" - 1) : "";
}

std::string error_fields(const Status& s) {
  return "\"ok\":false,\"code\":\"" + std::string(code_name(s.code())) + "\",\"message\":" + obd::tools::jstr(s.message());
}

class PrintEvents final : public FetchObserver {
 public:
  void on_fetch(const FetchEvent& e) override {
    std::lock_guard lock(out_mu);
    printf("{\"op\":\"fetch\",\"offset\":%llu,\"length\":%llu,\"bytes\":%llu,\"status\":%ld,\"attempt\":%u,"
           "\"ok\":%s,\"p2p\":%s,\"us\":%llu}\n",
           (unsigned long long)e.offset, (unsigned long long)e.length, (unsigned long long)e.bytes, e.http_status,
           e.attempt, e.ok ? "true" : "false", e.p2p ? "true" : "false", (unsigned long long)e.latency_us);
  }
};

double ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

int usage(const char* why) {
  fprintf(stderr, "remote_get: %s\n", why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  RegistryOptions o;
  std::string url, digest, cred_file;
  uint64_t size = 0;
  unsigned threads = 1;
  bool events = false;
  std::vector<std::pair<std::string, Credential>> auths;
  std::optional<CredentialServer> server;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    auto num = [&]() { return strtoull(next().c_str(), nullptr, 10); };
    if (a == "--url") url = next();
    else if (a == "--digest") digest = next();
    else if (a == "--size") size = num();
    else if (a == "--ca") o.ca_file = next();
    else if (a == "--cert") o.cert_file = next();
    else if (a == "--key") o.key_file = next();
    else if (a == "--cred-file") cred_file = next();
    else if (a == "--auth") {
      std::string v = next();
      size_t eq = v.find('='), colon = v.find(':', eq == std::string::npos ? 0 : eq);
      if (eq == std::string::npos || colon == std::string::npos) return usage("--auth PREFIX=USER:PASS");
      auths.push_back({v.substr(0, eq), {v.substr(eq + 1, colon - eq - 1), v.substr(colon + 1)}});
    } else if (a == "--cred-server") {
      std::string v = next();
      size_t comma = v.find(',');
      if (comma == std::string::npos) return usage("--cred-server MODE,PATH");
      if (!server) server.emplace();
      server->mode = v.substr(0, comma);
      server->path = v.substr(comma + 1);
    } else if (a == "--cred-server-ca") {
      if (!server) server.emplace();
      server->server_ca = next();
    } else if (a == "--cred-server-cert") {
      if (!server) server.emplace();
      server->client_cert = next();
    } else if (a == "--cred-server-key") {
      if (!server) server.emplace();
      server->client_key = next();
    } else if (a == "--cred-server-timeout-ms") {
      if (!server) server.emplace();
      server->timeout_ms = uint32_t(num());
    } else if (a == "--p2p") o.p2p_address = next();
    else if (a == "--timeout-ms") o.read_timeout_ms = uint32_t(num());
    else if (a == "--connect-timeout-ms") o.connect_timeout_ms = uint32_t(num());
    else if (a == "--retries") o.retries = uint32_t(num());
    else if (a == "--retry-pause-ms") o.retry_pause_ms = uint32_t(num());
    else if (a == "--user-agent") o.user_agent = next();
    else if (a == "--threads") threads = std::max<unsigned>(1, unsigned(num()));
    else if (a == "--events") events = true;
    else if (!a.empty() && a[0] != '-' && a.find(':') != std::string::npos) {
      size_t c = a.find(':');
      ranges.push_back({strtoull(a.substr(0, c).c_str(), nullptr, 10), strtoull(a.substr(c + 1).c_str(), nullptr, 10)});
    } else {
      return usage(("unknown argument " + a).c_str());
    }
  }
  if (url.empty() || digest.empty()) return usage("--url and --digest are required");

  std::vector<CredentialProviderPtr> chain;
  if (!auths.empty()) chain.push_back(static_credentials(auths));
  if (!cred_file.empty()) chain.push_back(file_credentials(cred_file));
  if (server) chain.push_back(server_credentials(*server));
  std::shared_ptr<FetchObserver> observer;
  if (events) observer = std::make_shared<PrintEvents>();

  auto t0 = std::chrono::steady_clock::now();
  auto reg = Registry::create(o, chain_credentials(chain), observer);
  if (!reg) {
    printf("{\"op\":\"open\",%s}\n", error_fields(reg.status()).c_str());
    return 0;
  }
  auto file = (*reg)->open_blob(url, digest, size);
  if (!file) {
    std::lock_guard lock(out_mu);
    printf("{\"op\":\"open\",%s,\"ms\":%.1f}\n", error_fields(file.status()).c_str(), ms_since(t0));
    return 0;
  }
  {
    std::lock_guard lock(out_mu);
    printf("{\"op\":\"open\",\"ok\":true,\"size\":%llu,\"p2p\":%s,\"ms\":%.1f}\n",
           (unsigned long long)(*file)->size().value(), (*reg)->p2p_active() ? "true" : "false", ms_since(t0));
    fflush(stdout);
  }

  // Reads run on `threads` threads at once (ranges dealt round robin); the
  // lines come out in range order.
  std::vector<std::string> lines(ranges.size());
  auto worker = [&](unsigned w) {
    for (size_t i = w; i < ranges.size(); i += threads) {
      auto [off, len] = ranges[i];
      std::vector<uint8_t> buf(len);
      auto t = std::chrono::steady_clock::now();
      auto r = (*file)->pread(buf.data(), len, off);
      char head[128];
      snprintf(head, sizeof head, "{\"op\":\"read\",\"off\":%llu,\"len\":%llu,", (unsigned long long)off,
               (unsigned long long)len);
      char ms[32];
      snprintf(ms, sizeof ms, "%.1f", ms_since(t));
      if (r) {
        lines[i] = std::string(head) + "\"ok\":true,\"bytes\":" + std::to_string(*r) + ",\"sha256\":\"" +
                   sha256_hex(buf.data(), *r) + "\",\"ms\":" + ms + "}";
      } else {
        lines[i] = std::string(head) + error_fields(r.status()) + ",\"ms\":" + ms + "}";
      }
    }
  };
  std::vector<std::thread> pool;
  for (unsigned w = 0; w < threads; w++) pool.emplace_back(worker, w);
  for (auto& t : pool) t.join();
  std::lock_guard lock(out_mu);
  for (const auto& l : lines) printf("%s\n", l.c_str());
  return 0;
}
