#include "common/status.h"

#include <cstring>

namespace obd {

const char* code_name(Code c) {
  switch (c) {
#define OBD_NAME(name, str) \
  case Code::name:          \
    return str;
    OBD_ERROR_CODES(OBD_NAME)
#undef OBD_NAME
  }
  return "INTERNAL";
}

Status Status::from_errno(int err, std::string what) {
  Code code = Code::kEIO;
  if (err == ENOENT) code = Code::kENOENT;
  else if (err == EEXIST) code = Code::kEEXIST;
  else if (err == ENOSPC) code = Code::kENOSPC;
  else if (err == EROFS) code = Code::kEROFS;
  else if (err == EINVAL) code = Code::kEINVAL;
  else if (err == EOPNOTSUPP) code = Code::kENOTSUP;
  return Status(code, what + ": " + std::strerror(err));
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace obd
