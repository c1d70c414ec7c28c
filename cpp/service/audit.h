// The audit log (§6.5): one line per slow read, registry fetch, background
// download step and eviction, appended to auditPath and rotated at 10 MiB
// (3 files kept) as upstream. Writers on any thread; a line is one write(2).
#pragma once
#include <cstdint>
#include <mutex>
#include <string>

namespace obd::service {

class AuditLog {
 public:
  // Opens (creates) `path`; an empty path or a failure to open leaves the log
  // disabled: auditing never fails an I/O.
  explicit AuditLog(std::string path, uint64_t rotate_bytes = 10ull << 20, unsigned keep = 3);
  ~AuditLog();
  AuditLog(const AuditLog&) = delete;
  AuditLog& operator=(const AuditLog&) = delete;

  bool enabled() const { return fd_ >= 0; }
  // Appends "<UTC time>|AUDIT|<op>|<fields>\n"; `fields` is "key=value|...".
  void write(const char* op, const std::string& fields);

 private:
  void rotate_locked();

  std::string path_;
  uint64_t rotate_bytes_;
  unsigned keep_;
  std::mutex mu_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

}  // namespace obd::service
