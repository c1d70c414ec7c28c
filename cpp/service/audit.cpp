#include "service/audit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>

namespace obd::service {

AuditLog::AuditLog(std::string path, uint64_t rotate_bytes, unsigned keep)
    : path_(std::move(path)), rotate_bytes_(rotate_bytes), keep_(keep) {
  if (path_.empty()) return;
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  struct stat st;
  if (fd_ >= 0 && ::fstat(fd_, &st) == 0) written_ = uint64_t(st.st_size);
}

AuditLog::~AuditLog() {
  if (fd_ >= 0) ::close(fd_);
}

// path -> path.1 -> ... -> path.<keep>; the oldest is dropped.
void AuditLog::rotate_locked() {
  ::close(fd_);
  for (unsigned i = keep_; i >= 1; i--) {
    std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
    ::rename(from.c_str(), (path_ + "." + std::to_string(i)).c_str());
  }
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  written_ = 0;
}

void AuditLog::write(const char* op, const std::string& fields) {
  if (fd_ < 0) return;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(now.time_since_epoch()).count() % 1000000;
  std::tm tm;
  gmtime_r(&t, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(us));
  std::string line = std::string(stamp) + "|AUDIT|" + op + "|" + fields + "\n";
  std::lock_guard lk(mu_);
  if (fd_ < 0) return;
  if (written_ + line.size() > rotate_bytes_ && written_ > 0) rotate_locked();
  if (fd_ < 0) return;
  ssize_t n = ::write(fd_, line.data(), line.size());
  if (n > 0) written_ += uint64_t(n);
}

}  // namespace obd::service
