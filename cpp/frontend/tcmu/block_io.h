// The emulation's BlockIo over a BlockDevice queue: the ring's thread owns
// the queue and waits for each request it runs.
#pragma once
#include <memory>

#include "device/block_device.h"
#include "frontend/tcmu/scsi.h"

namespace obd::frontend::tcmu {

class QueueIo final : public BlockIo {
 public:
  explicit QueueIo(IoQueue& queue) : queue_(queue) {}
  Status run(IoRequest& req) override;

 private:
  IoQueue& queue_;
};

// What the disk of `dev` reports; `serial` names it (VPD 0x80/0x83).
DiskInfo disk_info(const BlockDevice& dev, std::string serial);

}  // namespace obd::frontend::tcmu
