#include "service/service_image.h"

#include <chrono>

#include "service/observer.h"

namespace obd::service {

ServiceImage::ServiceImage(Parts parts) : parts_(std::move(parts)) {
  // §6.3: no background download while a trace is being recorded (the
  // service starts the downloader paused), so the trace sees the reads a
  // cold start makes; downloading resumes when the recording ends.
  if (parts_.downloader && parts_.recorder) watch_thread_ = std::thread([this] { watch_recording(); });
}

ServiceImage::~ServiceImage() {
  cancel_ = true;
  if (watch_thread_.joinable()) watch_thread_.join();
  if (prefetch_thread_.joinable()) prefetch_thread_.join();
  parts_.downloader.reset();  // stops and joins
  (void)finish_recording();
}

Status ServiceImage::finish_recording() { return parts_.recorder ? parts_.recorder->finish() : Status::ok(); }

void ServiceImage::watch_recording() {
  while (!cancel_ && recording()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  if (!cancel_ && parts_.downloader) parts_.downloader->pause(false);
}

trace::PrefetchStats ServiceImage::run_prefetch() {
  auto t0 = std::chrono::steady_clock::now();
  trace::PrefetchStats st;
  if (parts_.plan.mode == trace::Mode::kReplay) {
    st = trace::replay(parts_.plan.records, parts_.layer_contents, parts_.prefetch_concurrency, &cancel_);
  } else if (parts_.plan.mode == trace::Mode::kFileList) {
    auto r = trace::prefetch_paths(parts_.stack, parts_.plan.paths, parts_.prefetch_concurrency, &cancel_);
    if (r) st = *r;
    else st.errors++;
  }
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  if (parts_.observer && parts_.plan.mode != trace::Mode::kNone)
    parts_.observer->on_prefetch(name(), st.reads, st.bytes, st.errors, uint64_t(us));
  return st;
}

void ServiceImage::start_prefetch() {
  std::lock_guard lk(mu_);
  if (prefetch_started_) return;
  prefetch_started_ = true;
  prefetch_thread_ = std::thread([this] {
    auto st = run_prefetch();
    std::lock_guard lk(mu_);
    prefetch_result_ = st;
    prefetch_done_ = true;
    prefetched_cv_.notify_all();
  });
}

Result<trace::PrefetchStats> ServiceImage::prefetch() {
  start_prefetch();
  std::unique_lock lk(mu_);
  prefetched_cv_.wait(lk, [&] { return prefetch_done_; });
  return prefetch_result_;
}

std::vector<download::DownloadState> ServiceImage::download_states() const {
  return parts_.downloader ? parts_.downloader->states() : std::vector<download::DownloadState>{};
}

bool ServiceImage::wait_downloads(std::chrono::milliseconds limit) {
  return parts_.downloader ? parts_.downloader->wait_for(limit) : true;
}

}  // namespace obd::service
