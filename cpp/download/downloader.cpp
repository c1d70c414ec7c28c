#include "download/downloader.h"

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <random>

#include "download/job.h"
#include "download/token_bucket.h"

namespace obd::download {

using Clock = std::chrono::steady_clock;

struct Downloader::Shared final : JobControl {
  Shared(DownloadOptions o, std::vector<DownloadJob> j, std::shared_ptr<DownloadObserver> obs)
      : opts(std::move(o)),
        jobs(std::move(j)),
        observer(std::move(obs)),
        states(jobs.size(), DownloadState::kWaiting),
        bucket(uint64_t(opts.max_mbps) << 20, Clock::now()) {}

  const DownloadOptions opts;
  const std::vector<DownloadJob> jobs;
  const std::shared_ptr<DownloadObserver> observer;

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false, paused = false, finished = false;
  std::vector<DownloadState> states;

  // Used by the download thread only.
  TokenBucket bucket;
  size_t job = 0;
  uint64_t done_bytes = 0;

  // Sleeps for `d`; false when stop() cut it short.
  bool sleep(Clock::duration d) {
    std::unique_lock lock(mu);
    return !cv.wait_for(lock, d, [&] { return stopping; });
  }
  bool is_stopping() {
    std::lock_guard lock(mu);
    return stopping;
  }
  bool proceed() override {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return stopping || !paused; });
    return !stopping;
  }
  bool throttle(uint64_t bytes) override {
    Clock::duration d = bucket.take(bytes, Clock::now());
    return d <= Clock::duration::zero() ? !is_stopping() : sleep(d);
  }
  void progress(uint64_t done) override {
    done_bytes = done;
    emit(job, DownloadState::kRunning, nullptr);
  }

  void set(size_t i, DownloadState s, const std::string* message) {
    {
      std::lock_guard lock(mu);
      states[i] = s;
    }
    emit(i, s, message);
  }
  void emit(size_t i, DownloadState s, const std::string* message) {
    if (observer) observer->on_download({jobs[i].layer, s, i == job ? done_bytes : 0, jobs[i].size, message});
  }

  void run();
  // False when stopped; the job is then cancelled.
  bool run_job(size_t i);
};

void Downloader::Shared::run() {
  if (!jobs.empty()) {
    std::random_device seed;
    uint32_t extra = opts.delay_extra_s ? std::mt19937(seed())() % opts.delay_extra_s : 0;
    bool go = sleep(std::chrono::seconds(uint64_t(opts.delay_s) + extra));
    for (size_t i = 0; go && i < jobs.size(); i++) go = proceed() && run_job(i);
    for (size_t i = 0; i < jobs.size(); i++) {
      if (states[i] == DownloadState::kWaiting || states[i] == DownloadState::kRunning)
        set(i, DownloadState::kCancelled, nullptr);
    }
  }
  std::lock_guard lock(mu);
  finished = true;
  cv.notify_all();
}

bool Downloader::Shared::run_job(size_t i) {
  job = i;
  done_bytes = 0;
  set(i, DownloadState::kRunning, nullptr);
  const uint32_t tries = std::max<uint32_t>(1, opts.try_cnt);
  for (uint32_t t = 1;; t++) {
    bool final = false;
    std::string how;
    Status s = run_attempt(jobs[i], opts, *this, &final, &how);
    if (s) {
      done_bytes = jobs[i].size;
      set(i, DownloadState::kDone, &how);
      return true;
    }
    if (is_stopping()) return false;
    if (final || t >= tries) {
      std::string why = s.message();
      if (t > 1) why += " (attempt " + std::to_string(t) + " of " + std::to_string(tries) + ")";
      set(i, DownloadState::kFailed, &why);
      return true;
    }
    uint64_t pause_ms = std::min<uint64_t>(uint64_t(opts.retry_pause_ms) << std::min(t - 1, 16u), 30000);
    if (!sleep(std::chrono::milliseconds(pause_ms))) return false;
  }
}

std::unique_ptr<Downloader> Downloader::start(DownloadOptions opts, std::vector<DownloadJob> jobs,
                                              std::shared_ptr<DownloadObserver> observer) {
  std::unique_ptr<Downloader> d(new Downloader);
  d->shared_ = std::make_shared<Shared>(std::move(opts), std::move(jobs), std::move(observer));
  d->thread_ = std::thread([s = d->shared_] { s->run(); });
  return d;
}

Downloader::~Downloader() { stop(); }

void Downloader::stop() {
  {
    std::lock_guard lock(shared_->mu);
    shared_->stopping = true;
  }
  shared_->cv.notify_all();
  if (!thread_.joinable()) return;
  // An observer that stops us from the download thread cannot wait for
  // itself; the thread holds its own reference to the shared state.
  if (thread_.get_id() == std::this_thread::get_id()) {
    thread_.detach();
  } else {
    thread_.join();
  }
}

void Downloader::pause(bool paused) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->paused = paused;
  }
  shared_->cv.notify_all();
}

bool Downloader::wait_for(std::chrono::milliseconds timeout) {
  std::unique_lock lock(shared_->mu);
  return shared_->cv.wait_for(lock, timeout, [&] { return shared_->finished; });
}

std::vector<DownloadState> Downloader::states() const {
  std::lock_guard lock(shared_->mu);
  return shared_->states;
}

}  // namespace obd::download
