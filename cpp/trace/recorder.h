// Trace recording (format spec §6.4): the reads a device issues to its lower
// layers' LSMT files, kept in memory until the user deletes <path>.lock or
// the device closes, then written to <path> with <path>.ok next to it.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/status.h"
#include "io/file.h"
#include "trace/format.h"

namespace obd::trace {

class Recorder : public std::enable_shared_from_this<Recorder> {
 public:
  // Creates <path>.lock (an existing one, say left by a crash, is reused),
  // removes a stale <path>.ok and starts watching the lock every `poll`.
  static Result<std::shared_ptr<Recorder>> start(std::string path,
                                                 std::chrono::milliseconds poll = std::chrono::seconds(1));
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  // A File over lower `layer`'s LSMT content that records every successful
  // read ({'R', layer, bytes read, offset}) while recording. The File keeps
  // the Recorder alive, so the trace is written by the time the last
  // wrapped file and the caller's reference are gone.
  FilePtr wrap(uint32_t layer, FilePtr content);
  bool recording() const { return recording_.load(std::memory_order_acquire); }
  // Stops recording, writes the trace (temporary + rename over <path>),
  // deletes the lock and creates <path>.ok. Idempotent: later calls return
  // the first call's result. Also run when the lock disappears and by the
  // destructor.
  Status finish();

  // Called by wrapped files.
  void add(std::span<const Record> recs);
  const std::string& path() const { return path_; }

 private:
  Recorder(std::string path, std::chrono::milliseconds poll);
  void watch();
  Status write_trace();

  const std::string path_, lock_, ok_;
  const std::chrono::milliseconds poll_;
  std::atomic<bool> recording_{true};

  std::mutex mu_;  // records_
  std::vector<Record> records_;

  std::mutex finish_mu_;  // finished_, result_
  bool finished_ = false;
  Status result_;

  std::mutex wake_mu_;  // the watcher's sleep
  std::condition_variable wake_;
  bool stop_ = false;
  std::mutex join_mu_;
  std::thread watcher_;
  std::thread::id watcher_id_;
};

}  // namespace obd::trace
