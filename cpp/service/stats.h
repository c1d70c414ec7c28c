// Counters the Prometheus exporter reads (§6.5): reads served by the cache
// layer (`pread`) and fetches from the registry (`download`). Lock-free;
// the max latency is reset by the reader each time it takes a snapshot.
#pragma once
#include <atomic>
#include <cstdint>

namespace obd::service {

struct TypeSnapshot {
  uint64_t count = 0, bytes = 0, max_latency_us = 0;
};

class TypeStats {
 public:
  void add(uint64_t bytes, uint64_t latency_us) {
    count_.fetch_add(1, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    uint64_t m = max_us_.load(std::memory_order_relaxed);
    while (latency_us > m && !max_us_.compare_exchange_weak(m, latency_us, std::memory_order_relaxed)) {
    }
  }
  // Cumulative count and bytes; the max latency since the previous take.
  TypeSnapshot take(bool reset_max) {
    TypeSnapshot s{count_.load(), bytes_.load(), reset_max ? max_us_.exchange(0) : max_us_.load()};
    return s;
  }

 private:
  std::atomic<uint64_t> count_{0}, bytes_{0}, max_us_{0};
};

struct IoStats {
  TypeStats pread, download;
};

}  // namespace obd::service
