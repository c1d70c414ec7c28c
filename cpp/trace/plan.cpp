#include "trace/plan.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>

#include "io/file.h"

namespace obd::trace {

Result<std::vector<std::string>> parse_list(std::string_view text, const std::string& name) {
  if (text.size() > kMaxListSize)
    return Status(Code::kEINVAL, name + ": prefetch list is " + std::to_string(text.size()) +
                                     " bytes, more than the 65536 allowed");
  if (size_t nul = text.find('\0'); nul != std::string_view::npos)
    return Status(Code::kEINVAL, name + ": neither a trace (no trace magic) nor a text list (NUL byte at offset " +
                                     std::to_string(nul) + ")");
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    const char* blanks = " \t\r";
    size_t b = line.find_first_not_of(blanks);
    if (b == std::string_view::npos) continue;
    line = line.substr(b, line.find_last_not_of(blanks) - b + 1);
    std::string p(line);
    if (p[0] != '/') p.insert(p.begin(), '/');
    out.push_back(std::move(p));
  }
  return out;
}

Result<Plan> load(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Plan{};
    return Status::from_errno(errno, "stat " + path);
  }
  if (!S_ISREG(st.st_mode)) return Status(Code::kEINVAL, path + ": trace path is not a regular file");
  OBD_ASSIGN_OR_RETURN(FilePtr f, open_local(path, OpenMode::kRead));
  OBD_ASSIGN_OR_RETURN(uint64_t size, f->size());
  Plan plan;
  if (size == 0) {
    plan.mode = Mode::kRecord;
    return plan;
  }
  uint8_t head[4] = {};
  OBD_ASSIGN_OR_RETURN(size_t got, f->pread(head, sizeof head, 0));
  uint32_t magic = 0;
  std::memcpy(&magic, head, sizeof magic);
  if (got == sizeof head && magic == kMagic) {
    if (size > kMaxTraceSize)
      return Status(Code::kTRACE_CORRUPT, path + ": trace is " + std::to_string(size) + " bytes, more than 1 GiB");
    std::vector<uint8_t> bytes(size);
    OBD_TRY(f->read_exact(bytes.data(), size, 0, Code::kTRACE_CORRUPT, "trace"));
    OBD_ASSIGN_OR_RETURN(plan.records, decode(bytes, path));
    plan.mode = Mode::kReplay;
    return plan;
  }
  if (size > kMaxListSize)
    return Status(Code::kEINVAL, path + ": prefetch list is " + std::to_string(size) +
                                     " bytes, more than the 65536 allowed");
  std::string text(size, '\0');
  OBD_TRY(f->read_exact(text.data(), size, 0, Code::kEIO, "prefetch list"));
  OBD_ASSIGN_OR_RETURN(plan.paths, parse_list(text, path));
  plan.mode = Mode::kFileList;
  return plan;
}

}  // namespace obd::trace
