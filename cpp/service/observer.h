// Turns what the remote reader, the cache and the downloader report into
// the service's counters, audit lines and events. One per service; called
// on I/O threads, so everything here is quick and never blocks on JS.
#pragma once
#include <memory>
#include <mutex>

#include "cache/cache.h"
#include "download/downloader.h"
#include "remote/registry.h"
#include "service/audit.h"
#include "service/events.h"
#include "service/stats.h"

namespace obd::service {

class Observer final : public remote::FetchObserver, public cache::CacheObserver, public download::DownloadObserver {
 public:
  explicit Observer(std::string audit_path) : audit_(std::move(audit_path)) {}

  void on_fetch(const remote::FetchEvent& e) override;
  void on_cache(const cache::CacheEvent& e) override;
  void on_download(const download::DownloadEvent& e) override;
  void on_prefetch(const std::string& image, uint64_t reads, uint64_t bytes, uint64_t errors, uint64_t latency_us);

  IoStats& stats() { return stats_; }
  void set_sink(EventSink sink);

 private:
  void emit(Event&& e);

  IoStats stats_;
  AuditLog audit_;
  std::mutex sink_mu_;
  std::shared_ptr<EventSink> sink_;
};

}  // namespace obd::service
