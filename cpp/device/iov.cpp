#include "device/iov.h"

#include <algorithm>
#include <cstring>

namespace obd {

uint64_t iov_total(const iovec* iov, uint32_t n) {
  uint64_t total = 0;
  for (uint32_t i = 0; i < n; i++) total += iov[i].iov_len;
  return total;
}

template <typename Fn>
void IovCursor::walk(size_t len, Fn&& fn) {
  size_t done = 0;
  while (done < len && idx_ < n_) {
    size_t take = std::min(len - done, iov_[idx_].iov_len - pos_);
    fn(static_cast<uint8_t*>(iov_[idx_].iov_base) + pos_, done, take);
    done += take;
    pos_ += take;
    if (pos_ == iov_[idx_].iov_len) {
      idx_++;
      pos_ = 0;
    }
  }
}

void IovCursor::copy_out(void* dst, size_t len) {
  walk(len, [&](uint8_t* p, size_t at, size_t n) { std::memcpy(static_cast<uint8_t*>(dst) + at, p, n); });
}

void IovCursor::copy_in(const void* src, size_t len) {
  walk(len, [&](uint8_t* p, size_t at, size_t n) { std::memcpy(p, static_cast<const uint8_t*>(src) + at, n); });
}

}  // namespace obd
