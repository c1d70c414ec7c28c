#include "cache/unit_map.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/crc32c.h"

namespace obd::cache {
namespace {

// Layout: magic, u64 blob size, u32 unit, u32 zero, u64 units, the bitmap
// words, then a CRC-32C of everything before it. Host byte order: the cache
// is private to this machine.
constexpr char kMagic[8] = {'O', 'B', 'D', 'C', 'M', 'A', 'P', '1'};
constexpr size_t kHeader = 32;

void put64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
uint64_t get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

Status write_all(int fd, const uint8_t* p, size_t n, const std::string& path) {
  for (size_t done = 0; done < n;) {
    ssize_t w = ::write(fd, p + done, n - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return Status::from_errno(errno, "write " + path);
    done += size_t(w);
  }
  return Status::ok();
}

std::string parent(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

}  // namespace

bool UnitMap::any() const {
  return std::any_of(words_.begin(), words_.end(), [](uint64_t w) { return w != 0; });
}

Status UnitMap::save(const std::string& path, uint64_t blob_size, uint32_t unit) const {
  std::vector<uint8_t> b(kHeader + words_.size() * 8 + 4, 0);
  std::memcpy(b.data(), kMagic, 8);
  put64(&b[8], blob_size);
  std::memcpy(&b[16], &unit, 4);
  put64(&b[24], units_);
  if (!words_.empty()) std::memcpy(&b[kHeader], words_.data(), words_.size() * 8);
  uint32_t crc = crc32c_update(0, b.data(), b.size() - 4);
  std::memcpy(&b[b.size() - 4], &crc, 4);

  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::from_errno(errno, "create " + tmp);
  Status s = write_all(fd, b.data(), b.size(), tmp);
  if (s && ::fsync(fd) != 0) s = Status::from_errno(errno, "fsync " + tmp);
  ::close(fd);
  if (s && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno(errno, "rename " + tmp);
  if (!s) {
    ::unlink(tmp.c_str());
    return s;
  }
  // The rename itself must be durable before the caller relies on it.
  std::string dir = parent(path);
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return Status::ok();
}

std::optional<UnitMap> UnitMap::load(const std::string& path, uint64_t blob_size, uint32_t unit) {
  UnitMap m(blob_size / unit + (blob_size % unit != 0));
  const size_t want = kHeader + m.words_.size() * 8 + 4;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::vector<uint8_t> b(want + 1);
  size_t got = 0;
  while (got < b.size()) {
    ssize_t n = ::read(fd, b.data() + got, b.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += size_t(n);
  }
  ::close(fd);
  if (got != want || std::memcmp(b.data(), kMagic, 8) != 0) return std::nullopt;
  uint32_t stored_unit, crc;
  std::memcpy(&stored_unit, &b[16], 4);
  std::memcpy(&crc, &b[want - 4], 4);
  if (get64(&b[8]) != blob_size || stored_unit != unit || get64(&b[24]) != m.units_ ||
      crc32c_update(0, b.data(), want - 4) != crc)
    return std::nullopt;
  if (!m.words_.empty()) std::memcpy(m.words_.data(), &b[kHeader], m.words_.size() * 8);
  return m;
}

}  // namespace obd::cache
