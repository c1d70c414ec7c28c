// Bearer tokens per scope, each kept until its expiry (§6.1: at least 30 s).
#pragma once
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "remote/http_client.h"

namespace obd::remote {

class TokenCache {
 public:
  std::optional<std::string> get(const std::string& key) {
    std::lock_guard lock(mu_);
    auto it = tokens_.find(key);
    if (it == tokens_.end()) return std::nullopt;
    if (Clock::now() >= it->second.expires) {
      tokens_.erase(it);
      return std::nullopt;
    }
    return it->second.token;
  }
  void put(const std::string& key, std::string token, std::chrono::seconds ttl) {
    std::lock_guard lock(mu_);
    tokens_[key] = {std::move(token), Clock::now() + ttl};
  }
  void drop(const std::string& key) {
    std::lock_guard lock(mu_);
    tokens_.erase(key);
  }

 private:
  struct Entry {
    std::string token;
    Clock::time_point expires;
  };
  std::mutex mu_;
  std::map<std::string, Entry> tokens_;
};

}  // namespace obd::remote
