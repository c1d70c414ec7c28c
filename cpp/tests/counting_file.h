// A File that passes reads through and logs each one (offset, length), so a
// test can see exactly which ranges a prefetch or a recorder's caller read,
// and counts the bytes they returned (pread_batch goes through pread).
#pragma once
#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include "io/file.h"

namespace obd::test {

class CountingFile final : public File {
 public:
  explicit CountingFile(FilePtr inner) : inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    {
      std::lock_guard l(mu_);
      log_.push_back({off, len});
    }
    auto r = inner_->pread(buf, len, off);
    if (r.is_ok()) bytes += *r;
    return r;
  }
  std::atomic<uint64_t> bytes{0};
  // Every read so far as (offset, length), sorted (threads make the order
  // arbitrary).
  std::vector<std::pair<uint64_t, uint64_t>> reads() const {
    std::lock_guard l(mu_);
    std::vector<std::pair<uint64_t, uint64_t>> v;
    for (const Extent& e : log_) v.emplace_back(e.off, e.len);
    std::sort(v.begin(), v.end());
    return v;
  }
  void clear() {
    std::lock_guard l(mu_);
    log_.clear();
  }

 private:
  FilePtr inner_;
  mutable std::mutex mu_;
  std::vector<Extent> log_;
};

}  // namespace obd::test
