#include "trace/reader.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace obd::trace {

namespace {
// Hands out the next piece of the job list; pieces of one job go out in
// order, so the reads keep the list's priority.
class Cursor {
 public:
  explicit Cursor(std::span<const ReadJob> jobs) : jobs_(jobs) {}
  bool next(ReadJob* piece) {
    std::lock_guard lock(mu_);
    while (i_ < jobs_.size() && done_ >= jobs_[i_].len) {
      i_++;
      done_ = 0;
    }
    if (i_ == jobs_.size()) return false;
    const ReadJob& j = jobs_[i_];
    uint64_t n = std::min<uint64_t>(kMaxPiece, j.len - done_);
    *piece = {j.file, j.off + done_, n};
    done_ += n;
    return true;
  }

 private:
  std::mutex mu_;
  std::span<const ReadJob> jobs_;
  size_t i_ = 0;
  uint64_t done_ = 0;
};
}  // namespace

PrefetchStats read_jobs(std::span<const ReadJob> jobs, unsigned concurrency, const std::atomic<bool>* cancel) {
  Cursor cursor(jobs);
  std::atomic<uint64_t> reads{0}, bytes{0}, errors{0};
  auto worker = [&] {
    std::unique_ptr<uint8_t[]> buf(new uint8_t[kMaxPiece]);
    ReadJob p;
    while (!(cancel && cancel->load(std::memory_order_relaxed)) && cursor.next(&p)) {
      Result<size_t> got = p.file->pread(buf.get(), p.len, p.off);
      if (got.is_ok()) bytes += *got;
      if (got.is_ok() && *got == p.len)
        reads++;
      else
        errors++;
    }
  };
  uint64_t pieces = 0;
  for (const ReadJob& j : jobs) pieces += (j.len + kMaxPiece - 1) / kMaxPiece;
  unsigned n = unsigned(std::clamp<uint64_t>(pieces, 1, std::max(concurrency, 1u)));
  std::vector<std::thread> threads;
  for (unsigned i = 1; i < n; i++) {
    try {
      threads.emplace_back(worker);
    } catch (const std::system_error&) {
      break;  // out of threads: the ones running share the work
    }
  }
  worker();  // the calling thread is one of them
  for (auto& t : threads) t.join();
  return {reads.load(), bytes.load(), errors.load()};
}

}  // namespace obd::trace
