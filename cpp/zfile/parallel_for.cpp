#include "zfile/parallel_for.h"

namespace obd::zfile {

ParallelFor::ParallelFor(unsigned threads) {
  for (unsigned i = 1; i < threads; i++) helpers_.emplace_back([this] { helper_loop(); });
}

ParallelFor::~ParallelFor() {
  {
    std::lock_guard lk(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : helpers_) t.join();
}

// Claims indexes until none are left; the lock is dropped while fn runs.
void ParallelFor::drain() {
  std::unique_lock lk(mu_);
  while (next_ < n_) {
    size_t i = next_++;
    const auto* fn = fn_;
    lk.unlock();
    (*fn)(i);
    lk.lock();
    if (++done_ == n_) finished_.notify_all();
  }
}

void ParallelFor::helper_loop() {
  unsigned long seen = 0;
  for (;;) {
    {
      std::unique_lock lk(mu_);
      wake_.wait(lk, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    drain();
  }
}

void ParallelFor::run(size_t n, const std::function<void(size_t)>& fn) {
  if (helpers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; i++) fn(i);
    return;
  }
  {
    std::lock_guard lk(mu_);
    fn_ = &fn;
    n_ = n;
    next_ = done_ = 0;
    generation_++;
  }
  wake_.notify_all();
  drain();
  std::unique_lock lk(mu_);
  finished_.wait(lk, [&] { return done_ == n_; });
  fn_ = nullptr;
  n_ = 0;
}

}  // namespace obd::zfile
