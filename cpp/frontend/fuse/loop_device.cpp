#include "frontend/fuse/loop_device.h"

#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace obd::frontend::fuse {
namespace {

// Closes on scope exit.
struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// Another process may take the device LOOP_CTL_GET_FREE named before we
// bind it (EBUSY): ask again, a bounded number of times.
constexpr int kAttempts = 16;

}  // namespace

Result<std::string> loop_attach(const std::string& file, const LoopOptions& opts) {
  Fd backing{::open(file.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC)};
  if (backing.fd < 0) return Status::from_errno(errno, "loop: open " + file);
  Fd ctl{::open("/dev/loop-control", O_RDWR | O_CLOEXEC)};
  if (ctl.fd < 0) return Status::from_errno(errno, "loop: open /dev/loop-control (is the loop module loaded?)");
  loop_config cfg{};
  cfg.fd = uint32_t(backing.fd);
  cfg.info.lo_flags = (opts.read_only ? LO_FLAGS_READ_ONLY : 0) | (opts.direct_io ? LO_FLAGS_DIRECT_IO : 0);
  // What `losetup --list` shows as the backing file (the kernel keeps 63 bytes).
  std::strncpy(reinterpret_cast<char*>(cfg.info.lo_file_name), file.c_str(), LO_NAME_SIZE - 1);
  int err = 0;
  for (int attempt = 0; attempt < kAttempts; attempt++) {
    int n = ::ioctl(ctl.fd, LOOP_CTL_GET_FREE);
    if (n < 0) return Status::from_errno(errno, "loop: LOOP_CTL_GET_FREE");
    std::string dev = "/dev/loop" + std::to_string(n);
    Fd loop{::open(dev.c_str(), (opts.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC)};
    if (loop.fd < 0) return Status::from_errno(errno, "loop: open " + dev);
    if (::ioctl(loop.fd, LOOP_CONFIGURE, &cfg) == 0) return dev;
    err = errno;
    if (err != EBUSY) return Status::from_errno(err, "loop: LOOP_CONFIGURE " + dev + " on " + file);
  }
  return Status::from_errno(err, "loop: every free loop device was taken before it could be bound to " + file);
}

Status loop_detach(const std::string& device) {
  Fd loop{::open(device.c_str(), O_RDONLY | O_CLOEXEC)};
  if (loop.fd < 0) return Status::from_errno(errno, "loop: open " + device);
  if (::ioctl(loop.fd, LOOP_CLR_FD, 0) != 0) return Status::from_errno(errno, "loop: LOOP_CLR_FD " + device);
  return Status::ok();
}

}  // namespace obd::frontend::fuse
