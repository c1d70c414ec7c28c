// The raw sources: file descriptors, Files and memory.
#include "archive/byte_stream.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>

namespace obd {

Result<size_t> read_full(ByteStream& s, void* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    OBD_ASSIGN_OR_RETURN(size_t k, s.read(static_cast<uint8_t*>(buf) + got, n - got));
    if (k == 0) break;
    got += k;
  }
  return got;
}

namespace {

class FdStream final : public ByteStream {
 public:
  FdStream(int fd, std::string name, bool own) : fd_(fd), own_(own), name_(std::move(name)) {}
  ~FdStream() override {
    if (own_) ::close(fd_);
  }
  Result<size_t> read(void* buf, size_t n) override {
    if (n == 0) return size_t(0);
    n = std::min<size_t>(n, SSIZE_MAX);
    for (;;) {
      ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) {
        consumed_ += uint64_t(r);
        return size_t(r);
      }
      if (errno == EINTR) continue;
      // A descriptor inherited in non-blocking mode (a pipe set up by a parent
      // process): wait for data instead of failing.
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) return Status::from_errno(errno, name_ + ": poll");
        continue;
      }
      return Status::from_errno(errno, name_ + ": read at offset " + std::to_string(consumed_));
    }
  }
  uint64_t consumed() const override { return consumed_; }
  const std::string& name() const override { return name_; }

 private:
  int fd_;
  bool own_;
  std::string name_;
  uint64_t consumed_ = 0;
};

class FileStream final : public ByteStream {
 public:
  explicit FileStream(FilePtr f) : f_(std::move(f)) {}
  Result<size_t> read(void* buf, size_t n) override {
    OBD_ASSIGN_OR_RETURN(size_t k, f_->pread(buf, n, pos_));
    pos_ += k;
    return k;
  }
  uint64_t consumed() const override { return pos_; }
  const std::string& name() const override { return f_->name(); }

 private:
  FilePtr f_;
  uint64_t pos_ = 0;
};

class MemoryStream final : public ByteStream {
 public:
  MemoryStream(const void* data, size_t len, std::string name)
      : data_(static_cast<const uint8_t*>(data)), len_(len), name_(std::move(name)) {}
  Result<size_t> read(void* buf, size_t n) override {
    size_t k = std::min(n, len_ - pos_);
    if (k) std::memcpy(buf, data_ + pos_, k);
    pos_ += k;
    return k;
  }
  uint64_t consumed() const override { return pos_; }
  const std::string& name() const override { return name_; }

 private:
  const uint8_t* data_;
  size_t len_;
  size_t pos_ = 0;
  std::string name_;
};

}  // namespace

ByteStreamPtr make_fd_stream(int fd, std::string name, bool own) {
  return std::make_unique<FdStream>(fd, std::move(name), own);
}

Result<ByteStreamPtr> open_path_stream(const std::string& path) {
  if (path == "-") return make_fd_stream(0, "<stdin>", false);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::from_errno(errno, path + ": open");
  return make_fd_stream(fd, path, true);
}

ByteStreamPtr make_file_stream(FilePtr file) { return std::make_unique<FileStream>(std::move(file)); }

ByteStreamPtr make_memory_stream(const void* data, size_t len, std::string name) {
  return std::make_unique<MemoryStream>(data, len, std::move(name));
}

}  // namespace obd
