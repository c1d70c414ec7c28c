// Error text for libext2fs errcodes without libcom_err's runtime.
//
// Debian's libcom_err.a keeps its message buffer in initial-exec TLS, which
// cannot be linked into the Node addon (a shared object). libext2fs only
// needs com_err() (warnings) and _et_list (error table registration), so
// both are defined here and the library's copies are never pulled in; the
// messages come straight from libext2fs's own table.
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <string>

#include "ext4/fs.h"

extern "C" {
struct et_list* _et_list = nullptr;

void com_err(const char* whoami, long code, const char* fmt, ...) {
  std::fprintf(stderr, "%s: %s ", whoami ? whoami : "libext2fs", obd::ext4::ext2_message(code).c_str());
  va_list ap;
  va_start(ap, fmt);
  std::vfprintf(stderr, fmt, ap);
  va_end(ap);
  std::fputc('\n', stderr);
}
}

namespace obd::ext4 {

std::string ext2_message(errcode_t err) {
  const error_table& t = et_ext2_error_table;
  std::string text;
  if (err >= t.base && err < t.base + t.n_msgs)
    text = t.msgs[err - t.base];
  else if (err > 0 && err < 4096)
    text = std::strerror(int(err));
  else
    text = "unknown libext2fs error";
  return text + " (errcode " + std::to_string(err) + ")";
}

}  // namespace obd::ext4
