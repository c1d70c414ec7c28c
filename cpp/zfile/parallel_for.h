// A tiny fixed pool for the writer's block compression: run(n, fn) calls
// fn(0..n-1) on the helper threads and the caller, and returns when all are
// done. Work is claimed by index, so the result order never depends on timing.
#pragma once
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace obd::zfile {

class ParallelFor {
 public:
  explicit ParallelFor(unsigned threads);  // threads - 1 helpers are started
  ~ParallelFor();
  ParallelFor(const ParallelFor&) = delete;
  ParallelFor& operator=(const ParallelFor&) = delete;

  void run(size_t n, const std::function<void(size_t)>& fn);

 private:
  void helper_loop();
  void drain();

  std::mutex mu_;
  std::condition_variable wake_, finished_;
  std::vector<std::thread> helpers_;
  const std::function<void(size_t)>* fn_ = nullptr;
  size_t n_ = 0, next_ = 0, done_ = 0;
  unsigned long generation_ = 0;
  bool stop_ = false;
};

}  // namespace obd::zfile
