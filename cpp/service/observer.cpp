#include "service/observer.h"

namespace obd::service {
namespace {

const char* state_name(download::DownloadState s) {
  switch (s) {
    case download::DownloadState::kWaiting: return "waiting";
    case download::DownloadState::kRunning: return "running";
    case download::DownloadState::kDone: return "done";
    case download::DownloadState::kFailed: return "failed";
    case download::DownloadState::kCancelled: return "cancelled";
  }
  return "unknown";
}

std::string kv(const char* k, uint64_t v) { return std::string(k) + "=" + std::to_string(v); }

}  // namespace

void Observer::set_sink(EventSink sink) {
  std::lock_guard lk(sink_mu_);
  sink_ = sink ? std::make_shared<EventSink>(std::move(sink)) : nullptr;
}

void Observer::emit(Event&& e) {
  std::shared_ptr<EventSink> sink;
  {
    std::lock_guard lk(sink_mu_);
    sink = sink_;
  }
  if (sink) (*sink)(std::move(e));
}

void Observer::on_fetch(const remote::FetchEvent& e) {
  const std::string& digest = e.digest ? *e.digest : std::string();
  if (e.ok) stats_.download.add(e.bytes, e.latency_us);
  audit_.write("download", "digest=" + digest + "|" + kv("offset", e.offset) + "|" + kv("size", e.length) + "|" +
                               kv("latency_us", e.latency_us) + "|" + kv("status", uint64_t(e.http_status)) + "|" +
                               kv("attempt", e.attempt) + (e.p2p ? "|p2p=1" : "") + (e.ok ? "" : "|failed=1"));
  Event ev{.kind = "fetch", .digest = digest, .offset = e.offset, .length = e.length, .bytes = e.bytes,
           .latency_us = e.latency_us, .ok = e.ok};
  emit(std::move(ev));
}

void Observer::on_cache(const cache::CacheEvent& e) {
  const std::string& key = e.key ? *e.key : std::string();
  switch (e.kind) {
    case cache::CacheEventKind::kHit:
    case cache::CacheEventKind::kMiss:
      stats_.pread.add(e.length, e.latency_us);
      // Upstream audits cache media reads slower than 1 ms.
      if (e.kind == cache::CacheEventKind::kHit && e.latency_us > 1000)
        audit_.write("cache:pread", "digest=" + key + "|" + kv("offset", e.offset) + "|" + kv("size", e.length) + "|" +
                                        kv("latency_us", e.latency_us));
      return;
    case cache::CacheEventKind::kEvict:
      audit_.write("eviction", "digest=" + key + "|" + kv("size", e.length));
      emit(Event{.kind = "evict", .digest = key, .length = e.length});
      return;
    case cache::CacheEventKind::kInvalidate:
      audit_.write("invalidate", "digest=" + key + "|" + kv("offset", e.offset) + "|" + kv("size", e.length));
      return;
    case cache::CacheEventKind::kWriteFailed:
      audit_.write("cache:write_failed", "digest=" + key + "|" + kv("offset", e.offset) + "|" + kv("size", e.length));
      emit(Event{.kind = "cache-write-failed", .digest = key, .offset = e.offset, .length = e.length, .ok = false});
      return;
  }
}

void Observer::on_download(const download::DownloadEvent& e) {
  std::string msg = e.message ? *e.message : std::string();
  audit_.write("bk_download", kv("layer", e.layer) + "|state=" + state_name(e.state) + "|" + kv("done", e.done_bytes) +
                                  "|" + kv("total", e.total_bytes) + (msg.empty() ? "" : "|message=" + msg));
  emit(Event{.kind = "download", .offset = e.done_bytes, .length = e.total_bytes, .layer = e.layer,
             .state = state_name(e.state), .message = msg, .ok = e.state != download::DownloadState::kFailed});
}

void Observer::on_prefetch(const std::string& image, uint64_t reads, uint64_t bytes, uint64_t errors,
                           uint64_t latency_us) {
  audit_.write("prefetch", "image=" + image + "|" + kv("reads", reads) + "|" + kv("bytes", bytes) + "|" +
                               kv("errors", errors) + "|" + kv("latency_us", latency_us));
  emit(Event{.kind = "prefetch", .digest = image, .length = reads, .bytes = bytes, .latency_us = latency_us,
             .message = errors ? std::to_string(errors) + " reads failed" : "", .ok = errors == 0});
}

}  // namespace obd::service
