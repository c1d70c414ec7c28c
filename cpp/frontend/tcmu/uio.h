// A target_core_user device's UIO side: /dev/uioN opened and its one map
// (mailbox, command ring, data area) mapped, plus the sysfs facts about it.
// The kernel lets one process open a TCMU UIO device at a time (EBUSY).
#pragma once
#include <cstddef>
#include <string>

#include "common/status.h"

namespace obd::frontend::tcmu {

// "uio3" from "uio3" or "/dev/uio3"; EINVAL for anything else.
Result<std::string> uio_short_name(const std::string& uio);

// /sys/class/uio/<uio>/name without its newline.
Result<std::string> uio_device_name(const std::string& uio);

class UioMap {
 public:
  static Result<UioMap> open(const std::string& uio);
  UioMap(UioMap&& o) noexcept;
  UioMap& operator=(UioMap&&) = delete;
  ~UioMap();

  int fd() const { return fd_; }
  void* map() const { return map_; }
  size_t len() const { return len_; }

  // Waits for the next interrupt (the kernel queued commands) after poll()
  // said the fd is readable: false once the device is gone (EIO).
  bool ack_event();
  // Tells the kernel that completions are waiting.
  void notify();

 private:
  UioMap(int fd, void* map, size_t len) : fd_(fd), map_(map), len_(len) {}
  int fd_;
  void* map_;
  size_t len_;
};

}  // namespace obd::frontend::tcmu
