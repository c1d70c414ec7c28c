#include "download/token_bucket.h"

#include <algorithm>

namespace obd::download {

TokenBucket::TokenBucket(uint64_t bytes_per_s, Clock::time_point now) : rate_(double(bytes_per_s)), last_(now) {}

TokenBucket::Clock::duration TokenBucket::take(uint64_t bytes, Clock::time_point now) {
  if (rate_ <= 0) return Clock::duration::zero();
  if (now > last_) {
    tokens_ = std::min(rate_, tokens_ + rate_ * std::chrono::duration<double>(now - last_).count());
    last_ = now;
  }
  tokens_ -= double(bytes);
  if (tokens_ >= 0) return Clock::duration::zero();
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(-tokens_ / rate_));
}

}  // namespace obd::download
