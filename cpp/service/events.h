// Progress events the service reports to its embedder (TypeScript events):
// registry fetches, cache evictions and write failures, background download
// progress, prefetch completion. Delivered by a sink that must not block.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

namespace obd::service {

struct Event {
  std::string kind{};   // fetch | evict | cache-write-failed | download | prefetch
  std::string digest{}; // layer blob digest (or cache key)
  uint64_t offset = 0, length = 0, bytes = 0, latency_us = 0;
  uint32_t layer = 0;   // download: position in lowers
  std::string state{};  // download: waiting|running|done|failed|cancelled
  std::string message{};  // failures: what went wrong
  bool ok = true;
};

using EventSink = std::function<void(Event&&)>;

}  // namespace obd::service
