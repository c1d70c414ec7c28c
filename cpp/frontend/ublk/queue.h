// One ublk queue served by one thread with its own io_uring: FETCH_REQ for
// every tag, then each request runs on the BlockDevice's IoQueue (whose
// completion eventfd the ring polls) and goes back to the kernel with
// COMMIT_AND_FETCH_REQ from the same thread, as ublk_drv requires.
#pragma once
#include <memory>
#include <thread>

#include "common/status.h"
#include "device/block_device.h"

namespace obd::frontend::ublk {

struct QueueSetup {
  unsigned qid = 0;
  uint16_t depth = 64;
  uint32_t max_io_bytes = 512 << 10;
  unsigned workers = 2;  // IoQueue threads executing requests
  int cdev_fd = -1;      // /dev/ublkcN, owned by the caller
};

class QueueThread {
 public:
  // Opens the IoQueue, maps the descriptors and starts the thread; returns
  // once every tag's FETCH_REQ is submitted (or that failed).
  static Result<std::unique_ptr<QueueThread>> start(BlockDevice& dev, const QueueSetup& setup);
  // Asks the thread to leave once no request runs (after STOP_DEV, or to
  // give up a device); closing its ring cancels the fetches left.
  void request_stop();
  // Requests the stop and joins.
  ~QueueThread();
  QueueThread(const QueueThread&) = delete;
  QueueThread& operator=(const QueueThread&) = delete;
  struct Impl;

 private:
  explicit QueueThread(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace obd::frontend::ublk
