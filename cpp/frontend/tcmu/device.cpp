#include "frontend/tcmu/device.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <optional>
#include <thread>

#include "frontend/tcmu/block_io.h"
#include "frontend/tcmu/cfgstring.h"
#include "frontend/tcmu/uio.h"

namespace obd::frontend::tcmu {
namespace {

Status write_attr(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  if (out) out << value;
  if (out) out.flush();
  if (!out) return Status::from_errno(errno ? errno : EIO, "write " + value + " to " + path);
  return Status::ok();
}

class UioDevice final : public Device {
 public:
  UioDevice(std::shared_ptr<BlockDevice> dev, std::unique_ptr<IoQueue> queue, UioMap map, Ring ring, DiskInfo disk,
            std::string name, unsigned depth, int stop_fd, bool ring_reset)
      : dev_(std::move(dev)), queue_(std::move(queue)), map_(std::move(map)), ring_(ring), disk_(std::move(disk)),
        name_(std::move(name)), depth_(depth), stop_fd_(stop_fd), ring_reset_(ring_reset) {
    thread_ = std::thread([this] { loop(); });
  }

  ~UioDevice() override { close(); }

  const std::string& uio_name() const override { return name_; }
  bool running() const override { return running_.load(); }
  bool ring_reset() const override { return ring_reset_; }

  Status error() const override {
    std::lock_guard lk(mu_);
    return error_;
  }

  void close() override {
    std::lock_guard lk(close_mu_);
    if (closed_) return;
    closed_ = true;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(stop_fd_, &one, sizeof one);
    thread_.join();
    queue_.reset();
    dev_->close();
    ::close(stop_fd_);
    map_ = std::nullopt;  // unmaps, closes the UIO fd
  }

 private:
  void fail(Status s) {
    std::lock_guard lk(mu_);
    error_ = std::move(s);
  }

  void loop() {
    RingRunner runner(ring_, disk_, *queue_, [this] { map_->notify(); }, depth_);
    pollfd fds[3] = {{map_->fd(), POLLIN, 0}, {queue_->completion_fd(), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    for (bool first = true;; first = false) {
      if (!first) {
        int n = ::poll(fds, 3, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          fail(Status::from_errno(errno, name_ + ": poll"));
          break;
        }
        if (fds[2].revents) break;
        if (fds[0].revents && !map_->ack_event()) {
          fail(Status(Code::kCLOSED, name_ + ": the kernel removed the device"));
          break;
        }
      }
      auto r = runner.pump();
      if (!r) {
        fail(r.status());
        break;
      }
    }
    runner.drain();
    running_ = false;
  }

  std::shared_ptr<BlockDevice> dev_;
  std::unique_ptr<IoQueue> queue_;
  std::optional<UioMap> map_;
  Ring ring_;
  DiskInfo disk_;
  std::string name_;
  unsigned depth_;
  int stop_fd_;
  bool ring_reset_;
  std::thread thread_;
  std::atomic<bool> running_{true};
  mutable std::mutex mu_;
  Status error_;
  std::mutex close_mu_;
  bool closed_ = false;
};

}  // namespace

Result<std::unique_ptr<Device>> start_device(std::shared_ptr<BlockDevice> dev, const DeviceOptions& opts) {
  OBD_ASSIGN_OR_RETURN(std::string name, uio_device_name(opts.uio));
  OBD_ASSIGN_OR_RETURN(UioName parts, parse_uio_name(name));
  OBD_ASSIGN_OR_RETURN(UioMap map, UioMap::open(opts.uio));
  OBD_ASSIGN_OR_RETURN(Ring ring, Ring::attach(map.map(), map.len()));
  bool reset = ring.pending();
  if (reset) {
    std::string dir = opts.configfs + "/user_" + parts.hba + "/" + parts.device;
    OBD_TRY(write_attr(dir + "/action/reset_ring", "1"));
    OBD_ASSIGN_OR_RETURN(Ring fresh, Ring::attach(map.map(), map.len()));
    ring = fresh;
  }
  OBD_ASSIGN_OR_RETURN(auto queue, dev->open_queue(0, {.workers = opts.workers}));
  int stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) return Status::from_errno(errno, name + ": eventfd");
  DiskInfo disk = disk_info(*dev, opts.serial.empty() ? parts.device : opts.serial);
  return std::unique_ptr<Device>(new UioDevice(std::move(dev), std::move(queue), std::move(map), ring, std::move(disk),
                                               std::move(name), opts.depth, stop_fd, reset));
}

}  // namespace obd::frontend::tcmu
