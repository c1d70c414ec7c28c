#include "frontend/ublk/server.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "frontend/ublk/control.h"
#include "frontend/ublk/queue.h"
#include "frontend/ublk/wire.h"

namespace obd::frontend::ublk {
namespace {

using namespace std::chrono_literals;

// /dev/ublkcN appears through devtmpfs right after ADD_DEV; give it a moment.
Result<int> open_cdev(uint32_t id) {
  std::string path = "/dev/ublkc" + std::to_string(id);
  for (int i = 0;; i++) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
    if (errno != ENOENT || i >= 100) return Status::from_errno(errno, "ublk: open " + path);
    std::this_thread::sleep_for(10ms);
  }
}

class UblkServer final : public Server {
 public:
  UblkServer(std::shared_ptr<BlockDevice> dev, std::unique_ptr<Control> ctrl)
      : dev_(std::move(dev)), ctrl_(std::move(ctrl)) {}
  ~UblkServer() override { (void)close(); }

  int dev_id() const override { return static_cast<int>(id_); }
  std::string path() const override { return "/dev/ublkb" + std::to_string(id_); }

  Status create(const ServeOptions& o) {
    DeviceShape shape;
    unsigned cores = std::max(1u, std::thread::hardware_concurrency());
    shape.queues = static_cast<uint16_t>(o.queues ? o.queues : std::min(2u, cores));
    shape.depth = static_cast<uint16_t>(std::min(o.depth, 65535u));
    shape.max_io_bytes = o.max_io_bytes;
    OBD_TRY(check_shape(shape));
    if (dev_->size() % 4096)
      return Status(Code::kEINVAL, "ublk: device size " + std::to_string(dev_->size()) + " is not a multiple of 4096");
    ublksrv_ctrl_dev_info info = make_dev_info(shape, o.dev_id, getpid());
    OBD_TRY(ctrl_->add(info));
    id_ = info.dev_id;
    added_ = true;
    ublk_params p = make_params(dev_->size(), dev_->read_only(), info.max_io_buf_bytes);
    OBD_TRY(ctrl_->set_params(id_, p));
    OBD_TRY(run_queues(info, o.workers));
    OBD_TRY(ctrl_->start(id_, getpid()));
    return Status::ok();
  }

  Status recover(const ServeOptions& o) {
    if (o.dev_id < 0) return Status(Code::kEINVAL, "ublk: recovery needs the dev id of the device");
    id_ = static_cast<uint32_t>(o.dev_id);
    // The kernel quiesces the device shortly after its server died; until
    // then START_USER_RECOVERY answers EBUSY.
    Status st;
    for (int i = 0; i < 300; i++) {
      st = ctrl_->start_recovery(id_);
      if (st || st.code() != Code::kEBUSY) break;
      std::this_thread::sleep_for(100ms);
    }
    OBD_TRY(st);
    added_ = true;  // ours now: close() removes it
    ublksrv_ctrl_dev_info info;
    OBD_TRY(ctrl_->get_info(id_, info));
    OBD_TRY(run_queues(info, o.workers));
    OBD_TRY(ctrl_->end_recovery(id_, getpid()));
    return Status::ok();
  }

  Status close() override {
    std::lock_guard lk(mu_);
    if (closed_) return Status::ok();
    closed_ = true;
    Status first;
    auto keep = [&first](Status s) {
      if (!s && s.code() != Code::kENOENT && first) first = std::move(s);
    };
    if (added_) keep(ctrl_->stop(id_));
    for (auto& q : queues_) q->request_stop();
    queues_.clear();  // joins
    if (cdev_ >= 0) ::close(cdev_);
    cdev_ = -1;
    if (added_) keep(ctrl_->del(id_));
    dev_->close();
    return first;
  }

 private:
  Status run_queues(const ublksrv_ctrl_dev_info& info, unsigned workers) {
    OBD_ASSIGN_OR_RETURN(cdev_, open_cdev(id_));
    for (unsigned q = 0; q < info.nr_hw_queues; q++) {
      QueueSetup s;
      s.qid = q;
      s.depth = info.queue_depth;
      s.max_io_bytes = info.max_io_buf_bytes;
      s.workers = workers;
      s.cdev_fd = cdev_;
      OBD_ASSIGN_OR_RETURN(auto t, QueueThread::start(*dev_, s));
      queues_.push_back(std::move(t));
    }
    return Status::ok();
  }

  std::shared_ptr<BlockDevice> dev_;
  std::unique_ptr<Control> ctrl_;
  std::mutex mu_;
  uint32_t id_ = static_cast<uint32_t>(-1);
  bool added_ = false;
  bool closed_ = false;
  int cdev_ = -1;
  std::vector<std::unique_ptr<QueueThread>> queues_;
};

}  // namespace

Result<std::unique_ptr<Server>> serve(std::shared_ptr<BlockDevice> dev, const ServeOptions& o) {
  OBD_ASSIGN_OR_RETURN(auto ctrl, Control::open());
  auto s = std::make_unique<UblkServer>(std::move(dev), std::move(ctrl));
  Status st = o.recover ? s->recover(o) : s->create(o);
  if (!st) {
    (void)s->close();
    return st;
  }
  return std::unique_ptr<Server>(std::move(s));
}

}  // namespace obd::frontend::ublk
