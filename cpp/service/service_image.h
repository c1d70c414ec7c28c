// An image opened by the image service: the layer stack plus what runs
// beside it for its lifetime: background download of remote layers (§6.3),
// trace recording and prefetch (§6.4). I/O goes straight to the stack.
// Closing (the last reference) stops the downloader, cancels a prefetch and
// writes a recorded trace.
#pragma once
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "download/downloader.h"
#include "image/image.h"
#include "trace/plan.h"
#include "trace/prefetch.h"
#include "trace/recorder.h"

namespace obd::service {

class Observer;

class ServiceImage final : public Image {
 public:
  struct Parts {
    ImagePtr stack;
    std::vector<FilePtr> layer_contents;  // each lower's LSMT file (replay reads them)
    std::shared_ptr<trace::Recorder> recorder;
    trace::Plan plan;                     // replay records or file list
    unsigned prefetch_concurrency = 16;
    std::unique_ptr<download::Downloader> downloader;
    std::shared_ptr<Observer> observer;
  };
  explicit ServiceImage(Parts parts);
  ~ServiceImage() override;

  // Starts the prefetch of the plan on a thread of its own (once).
  void start_prefetch();
  // Runs (or waits for) the prefetch; reports what it read.
  Result<trace::PrefetchStats> prefetch();
  // Per remote lower with a download job, in job order.
  std::vector<download::DownloadState> download_states() const;
  bool wait_downloads(std::chrono::milliseconds limit);
  bool recording() const { return parts_.recorder && parts_.recorder->recording(); }
  // Ends a trace recording now (also done on close).
  Status finish_recording();

  // Image / File: the stack's.
  const std::string& name() const override { return parts_.stack->name(); }
  Result<uint64_t> size() override { return parts_.stack->size(); }
  uint64_t virtual_size() const override { return parts_.stack->virtual_size(); }
  bool writable() const override { return parts_.stack->writable(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override { return parts_.stack->pread(buf, len, off); }
  Status pread_batch(std::span<ReadReq> reqs) override { return parts_.stack->pread_batch(reqs); }
  Status pwrite(const void* buf, size_t len, uint64_t off) override { return parts_.stack->pwrite(buf, len, off); }
  Status punch_hole(uint64_t off, uint64_t len) override { return parts_.stack->punch_hole(off, len); }
  Status write_zeroes(uint64_t off, uint64_t len, bool may_unmap) override {
    return parts_.stack->write_zeroes(off, len, may_unmap);
  }
  Status sync() override { return parts_.stack->sync(); }
  Status snapshot(const UpperSpec& next) override { return parts_.stack->snapshot(next); }
  Result<std::vector<Extent>> data_extents(uint64_t from) override { return parts_.stack->data_extents(from); }

 private:
  trace::PrefetchStats run_prefetch();
  void watch_recording();

  Parts parts_;
  std::atomic<bool> cancel_{false};
  mutable std::mutex mu_;
  std::condition_variable prefetched_cv_;
  bool prefetch_started_ = false, prefetch_done_ = false;
  Result<trace::PrefetchStats> prefetch_result_{trace::PrefetchStats{}};
  std::thread prefetch_thread_, watch_thread_;
};

}  // namespace obd::service
