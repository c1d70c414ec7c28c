// Serves a TCMU ring with many commands in flight: READ/WRITE go to the
// device's IoQueue as they are fetched and complete through the Ring in
// whatever order the queue finishes them (the kernel finds each by its
// cmd_id); the other commands are quick or rare and run to their end at
// once through QueueIo. One thread drives a runner: the one that owns the
// queue and reaps it.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "device/block_device.h"
#include "frontend/tcmu/block_io.h"
#include "frontend/tcmu/ring.h"

namespace obd::frontend::tcmu {

constexpr unsigned kDefaultRingDepth = 32;

class RingRunner {
 public:
  // `notify` tells the kernel that completions are waiting (in production:
  // write 4 bytes to the UIO fd); it is called at most once per pump().
  RingRunner(Ring& ring, const DiskInfo& disk, IoQueue& queue, std::function<void()> notify,
             unsigned depth = kDefaultRingDepth);
  // Waits for the commands in flight and completes them.
  ~RingRunner();
  RingRunner(const RingRunner&) = delete;
  RingRunner& operator=(const RingRunner&) = delete;

  // Completes what the queue finished, then fetches and starts waiting
  // commands while fewer than `depth` are in flight; notifies once if
  // anything completed. Returns the count completed; EIO when the ring is
  // broken (the commands in flight still complete on drain()).
  Result<size_t> pump();

  // Waits for every command in flight, completes it and notifies.
  void drain();

  size_t in_flight() const { return slots_.size() - free_.size(); }

 private:
  struct Slot {
    RingRunner* owner = nullptr;
    RingCommand cmd;
    RwPlan plan;
    IoRequest flush;  // after a FUA write
  };

  void start(Slot& s);
  void finish(Slot& s, const ScsiResult& res);
  void notify_if_done();
  static void on_io(IoRequest& req, const Status& st);
  static void on_flush(IoRequest& req, const Status& st);

  Ring& ring_;
  const DiskInfo& disk_;
  IoQueue& queue_;
  QueueIo sync_io_;
  std::function<void()> notify_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> free_;
  size_t completed_ = 0;  // since the last notify
};

}  // namespace obd::frontend::tcmu
