// Walking a scatter/gather list in order, for requests whose buffers must be
// staged through one contiguous buffer (the Image wants aligned runs).
#pragma once
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace obd {

// Total bytes of `n` buffers.
uint64_t iov_total(const iovec* iov, uint32_t n);

class IovCursor {
 public:
  IovCursor(const iovec* iov, uint32_t n) : iov_(iov), n_(n) {}
  // Copies the next `len` bytes of the list into `dst` (gather).
  void copy_out(void* dst, size_t len);
  // Copies `len` bytes from `src` into the next bytes of the list (scatter).
  void copy_in(const void* src, size_t len);

 private:
  template <typename Fn>
  void walk(size_t len, Fn&& fn);

  const iovec* iov_;
  uint32_t n_;
  uint32_t idx_ = 0;
  size_t pos_ = 0;  // within iov_[idx_]
};

}  // namespace obd
