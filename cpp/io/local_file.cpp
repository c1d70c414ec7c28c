#include "io/local_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "io/nowait.h"

namespace obd {

namespace {

bool memory_backed(int fd) {
  struct statfs fs;
  return ::fstatfs(fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC);
}

}  // namespace

LocalFile::LocalFile(int fd, std::string path) : fd_(fd), path_(std::move(path)), in_memory_(memory_backed(fd)) {}

LocalFile::~LocalFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<uint64_t> LocalFile::size() {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return Status::from_errno(errno, "fstat " + path_);
  return uint64_t(st.st_size);
}

Result<size_t> LocalFile::finish_read(void* buf, size_t len, uint64_t off, size_t got) {
  auto* p = static_cast<uint8_t*>(buf);
  // RWF_NOWAIT: the page cache only (EAGAIN otherwise); EOPNOTSUPP where the
  // filesystem cannot tell.
  const bool nowait = !in_memory_ && nowait_active();
  while (got < len) {
    ssize_t n;
    if (nowait) {
      iovec v{p + got, len - got};
      n = ::preadv2(fd_, &v, 1, off_t(off + got), RWF_NOWAIT);
    } else {
      n = ::pread(fd_, p + got, len - got, off + got);
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (nowait && (errno == EAGAIN || errno == EOPNOTSUPP)) return would_block("read " + path_);
      return Status::from_errno(errno, "read " + path_ + " at offset " + std::to_string(off + got));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  return got;
}

Result<size_t> LocalFile::pread(void* buf, size_t len, uint64_t off) { return finish_read(buf, len, off, 0); }

Status LocalFile::pwrite(const void* buf, size_t len, uint64_t off) {
  auto* p = static_cast<const uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::pwrite(fd_, p + done, len - done, off + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::from_errno(errno, "write " + path_ + " at offset " + std::to_string(off + done));
    }
    done += size_t(n);
  }
  return Status::ok();
}

Status LocalFile::punch_hole(uint64_t off, uint64_t len) {
  if (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) != 0)
    return Status::from_errno(errno, "punch hole in " + path_ + " at offset " + std::to_string(off));
  return Status::ok();
}

Status LocalFile::truncate(uint64_t size) {
  if (::ftruncate(fd_, off_t(size)) != 0) return Status::from_errno(errno, "truncate " + path_);
  return Status::ok();
}

Status LocalFile::sync() {
  if (::fdatasync(fd_) != 0) return Status::from_errno(errno, "fdatasync " + path_);
  return Status::ok();
}

Result<std::vector<Extent>> LocalFile::data_extents(uint64_t from) {
  std::vector<Extent> out;
  OBD_ASSIGN_OR_RETURN(uint64_t end, size());
  uint64_t pos = from;
  while (pos < end) {
    off_t d = ::lseek(fd_, off_t(pos), SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;  // no data after pos
      return Status::from_errno(errno, "SEEK_DATA in " + path_);
    }
    off_t h = ::lseek(fd_, d, SEEK_HOLE);
    if (h < 0) return Status::from_errno(errno, "SEEK_HOLE in " + path_);
    out.push_back({uint64_t(d), uint64_t(h - d)});
    pos = uint64_t(h);
  }
  return out;
}

Status LocalFile::try_lock(bool exclusive) {
  while (::flock(fd_, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    if (errno == EINTR) continue;
    if (errno == EWOULDBLOCK)
      return Status(Code::kEBUSY, path_ + ": " +
                                      (exclusive ? "the layer is in use by another writer or commit"
                                                 : "the layer is open for writing") +
                                      " (its lock is held by another open, in this or another process)");
    return Status::from_errno(errno, "lock " + path_);
  }
  return Status::ok();
}

IoEngine default_io_engine() {
  const char* e = std::getenv("OBD_IO_ENGINE");
  if (e && std::strcmp(e, "io_uring") == 0) return IoEngine::kIoUring;
  return IoEngine::kPsync;
}

Result<FilePtr> open_local(const std::string& path, OpenMode mode, IoEngine engine) {
  int flags = O_CLOEXEC;
  switch (mode) {
    case OpenMode::kRead: flags |= O_RDONLY; break;
    case OpenMode::kReadWrite: flags |= O_RDWR; break;
    case OpenMode::kCreateExclusive: flags |= O_RDWR | O_CREAT | O_EXCL; break;
    case OpenMode::kCreateTruncate: flags |= O_RDWR | O_CREAT | O_TRUNC; break;
  }
  // O_NONBLOCK: opening a FIFO for reading would wait for a writer. It is
  // cleared once the file is known to be one we accept.
  int fd = ::open(path.c_str(), flags | O_NONBLOCK, 0644);
  if (fd < 0) return Status::from_errno(errno, "open " + path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    Status s = Status::from_errno(errno, "fstat " + path);
    ::close(fd);
    return s;
  }
  bool ok = S_ISREG(st.st_mode) || (mode != OpenMode::kRead && S_ISBLK(st.st_mode));
  int fl = ok ? ::fcntl(fd, F_GETFL) : 0;
  if (!ok || fl < 0 || ::fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    Status s = ok ? Status::from_errno(errno, "fcntl " + path)
                  : Status(Code::kEINVAL, path + " is not a regular file" +
                                              (S_ISFIFO(st.st_mode) ? " (a FIFO)" : S_ISDIR(st.st_mode) ? " (a directory)" : ""));
    ::close(fd);
    return s;
  }
  if (engine == IoEngine::kIoUring && io_uring_available()) return FilePtr(std::make_shared<UringFile>(fd, path));
  return FilePtr(std::make_shared<LocalFile>(fd, path));
}

}  // namespace obd
