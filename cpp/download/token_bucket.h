// Paces the background download to a byte rate. Each take() spends tokens,
// possibly into debt; the caller waits the returned time (the debt paid at
// `rate`) before fetching. Time spent fetching earns tokens, so the long-run
// rate holds however long requests take. Idle time earns at most one second
// of budget, the burst allowed after a pause.
#pragma once
#include <chrono>
#include <cstdint>

namespace obd::download {

class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  // 0 bytes per second: unlimited (take() always returns zero).
  TokenBucket(uint64_t bytes_per_s, Clock::time_point now);
  Clock::duration take(uint64_t bytes, Clock::time_point now);

 private:
  double rate_, tokens_ = 0;  // start empty: no burst at the start
  Clock::time_point last_;
};

}  // namespace obd::download
