// /dev/ublk-control: device lifecycle commands, each one URING_CMD on a
// small private io_uring (128-byte SQEs carry the command), waited for
// synchronously. START_DEV and END_USER_RECOVERY block until every queue
// has fetched all its tags, so they run while the queue threads do.
#pragma once
#include <liburing.h>

#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "frontend/ublk/uapi.h"

namespace obd::frontend::ublk {

class Control {
 public:
  static Result<std::unique_ptr<Control>> open();
  ~Control();
  Control(const Control&) = delete;
  Control& operator=(const Control&) = delete;

  // ADD_DEV; on success `info` holds the kernel's view (dev_id chosen).
  Status add(ublksrv_ctrl_dev_info& info);
  Status set_params(uint32_t dev_id, ublk_params& p);
  Status get_info(uint32_t dev_id, ublksrv_ctrl_dev_info& info);
  Status start(uint32_t dev_id, int pid);
  Status stop(uint32_t dev_id);
  Status del(uint32_t dev_id);
  Status start_recovery(uint32_t dev_id);
  Status end_recovery(uint32_t dev_id, int pid);

 private:
  Control() = default;
  // Returns the CQE result (≥ 0) or the failure as a Status naming `what`.
  Result<int> cmd(uint32_t op, uint32_t dev_id, void* buf, uint16_t len, uint64_t data0, const char* what);

  int fd_ = -1;
  io_uring ring_{};
  bool ring_ok_ = false;
};

}  // namespace obd::frontend::ublk
