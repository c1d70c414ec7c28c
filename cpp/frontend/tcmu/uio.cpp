#include "frontend/tcmu/uio.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace obd::frontend::tcmu {
namespace {

Result<std::string> read_sysfs(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status::from_errno(errno ? errno : ENOENT, "read " + path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == '\0')) s.pop_back();
  return s;
}

}  // namespace

Result<std::string> uio_short_name(const std::string& uio) {
  std::string n = uio.rfind("/dev/", 0) == 0 ? uio.substr(5) : uio;
  bool digits = n.size() > 3 && n.find_first_not_of("0123456789", 3) == std::string::npos;
  if (n.rfind("uio", 0) != 0 || !digits)
    return Status(Code::kEINVAL, "\"" + uio + "\" is not a UIO device (expected uioN or /dev/uioN)");
  return n;
}

Result<std::string> uio_device_name(const std::string& uio) {
  OBD_ASSIGN_OR_RETURN(std::string n, uio_short_name(uio));
  return read_sysfs("/sys/class/uio/" + n + "/name");
}

Result<UioMap> UioMap::open(const std::string& uio) {
  OBD_ASSIGN_OR_RETURN(std::string n, uio_short_name(uio));
  OBD_ASSIGN_OR_RETURN(std::string size_text, read_sysfs("/sys/class/uio/" + n + "/maps/map0/size"));
  char* end = nullptr;
  unsigned long long len = std::strtoull(size_text.c_str(), &end, 0);
  if (len == 0 || !end || *end) return Status(Code::kEIO, n + ": map0 size \"" + size_text + "\" is not a size");
  int fd = ::open(("/dev/" + n).c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return Status::from_errno(errno, "open /dev/" + n + (errno == EBUSY ? " (another handler serves it)" : ""));
  // Map 0 is at offset 0 (the map index times the page size).
  void* map = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) {
    int e = errno;
    ::close(fd);
    return Status::from_errno(e, "mmap /dev/" + n + " (" + std::to_string(len) + " bytes)");
  }
  return UioMap(fd, map, size_t(len));
}

UioMap::UioMap(UioMap&& o) noexcept : fd_(o.fd_), map_(o.map_), len_(o.len_) {
  o.fd_ = -1;
  o.map_ = nullptr;
}

UioMap::~UioMap() {
  if (map_) ::munmap(map_, len_);
  if (fd_ >= 0) ::close(fd_);
}

bool UioMap::ack_event() {
  uint32_t count;
  for (;;) {
    ssize_t n = ::read(fd_, &count, sizeof count);
    if (n == sizeof count) return true;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    return false;  // EIO: the device was removed under us
  }
}

void UioMap::notify() {
  uint32_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(fd_, &one, sizeof one);
}

}  // namespace obd::frontend::tcmu
