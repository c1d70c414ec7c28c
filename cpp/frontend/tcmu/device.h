// One TCMU device served by this process: its UIO ring polled on a thread
// of its own, commands executed on the BlockDevice's queue (workers) with
// up to `depth` in flight. Nothing here touches configfs but the ring reset
// of a takeover; creating and removing the device is the caller's job.
#pragma once
#include <memory>
#include <string>

#include "common/status.h"
#include "device/block_device.h"
#include "frontend/tcmu/ring_runner.h"

namespace obd::frontend::tcmu {

struct DeviceOptions {
  std::string uio;     // uioN or /dev/uioN
  std::string serial;  // VPD 0x80/0x83; default the configfs device name
  unsigned depth = kDefaultRingDepth;
  unsigned workers = 4;  // queue threads running the reads and writes
  // configfs root of the target core, for action/reset_ring.
  std::string configfs = "/sys/kernel/config/target/core";
};

class Device {
 public:
  virtual ~Device() = default;
  // The UIO device's name (`tcm-user/<hba>/<device>/<cfgstring>`).
  virtual const std::string& uio_name() const = 0;
  // False once the thread stopped by itself: the kernel removed the device
  // (EIO on the UIO fd) or the ring broke; error() says which.
  virtual bool running() const = 0;
  // Whether start_device reset the ring (an earlier handler left commands).
  virtual bool ring_reset() const = 0;
  virtual Status error() const = 0;
  // Stops the thread (after the commands in flight complete), unmaps and
  // closes the UIO fd, closes the queue. Idempotent; blocks until done.
  virtual void close() = 0;
};

// Opens the UIO device and starts serving its ring. A ring holding commands
// an earlier handler left unanswered is reset first (they complete BUSY and
// the initiator retries them), since their state cannot be known.
Result<std::unique_ptr<Device>> start_device(std::shared_ptr<BlockDevice> dev, const DeviceOptions& opts);

}  // namespace obd::frontend::tcmu
