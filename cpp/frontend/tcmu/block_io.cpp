#include "frontend/tcmu/block_io.h"

namespace obd::frontend::tcmu {
namespace {

struct Waiter {
  bool done = false;
  Status status;
};

void on_done(IoRequest& req, const Status& s) {
  auto* w = static_cast<Waiter*>(req.ctx);
  w->status = s;
  w->done = true;
}

}  // namespace

Status QueueIo::run(IoRequest& req) {
  Waiter w;
  req.done = on_done;
  req.ctx = &w;
  queue_.submit(req);
  while (!w.done) queue_.reap(1);
  return w.status;
}

DiskInfo disk_info(const BlockDevice& dev, std::string serial) {
  DiskInfo d;
  d.size = dev.size() / kBlockSize * kBlockSize;
  d.read_only = dev.read_only();
  d.serial = std::move(serial);
  return d;
}

}  // namespace obd::frontend::tcmu
