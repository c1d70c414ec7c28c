// A BlockDevice served as /dev/ublkbN through ublk_drv: ADD_DEV,
// SET_PARAMS, one QueueThread per hardware queue, START_DEV. Devices are
// added with user recovery, so when the serving process dies the kernel
// keeps /dev/ublkbN and queues its I/O until a new process recovers it
// (START_USER_RECOVERY, fetch, END_USER_RECOVERY) with the same dev id.
#pragma once
#include <memory>
#include <string>

#include "common/status.h"
#include "device/block_device.h"

namespace obd::frontend::ublk {

struct ServeOptions {
  int dev_id = -1;        // -1: the kernel picks (new devices only)
  bool recover = false;   // take over dev_id, left by a server that died
  unsigned queues = 0;    // 0: min(2, cores)
  unsigned depth = 64;
  uint32_t max_io_bytes = 512 << 10;
  unsigned workers = 2;   // threads executing each queue's requests
};

class Server {
 public:
  virtual ~Server() = default;
  virtual int dev_id() const = 0;
  // /dev/ublkb<dev_id>.
  virtual std::string path() const = 0;
  // STOP_DEV (the disk goes away once its I/O drained), stops the queue
  // threads, DEL_DEV, closes the device. Idempotent; blocks until done.
  virtual Status close() = 0;
};

Result<std::unique_ptr<Server>> serve(std::shared_ptr<BlockDevice> dev, const ServeOptions& opts);

}  // namespace obd::frontend::ublk
