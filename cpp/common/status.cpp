#include "common/status.h"

#include <cstring>

namespace obd {

const char* code_name(Code c) {
  switch (c) {
#define OBD_NAME(name, str, cat) \
  case Code::name:          \
    return str;
    OBD_ERROR_CODES(OBD_NAME)
#undef OBD_NAME
  }
  return "INTERNAL";
}

Category code_category(Code c) {
  switch (c) {
#define OBD_CAT(name, str, cat) \
  case Code::name:              \
    return Category::cat;
    OBD_ERROR_CODES(OBD_CAT)
#undef OBD_CAT
  }
  return Category::kInternal;
}

const char* category_name(Category c) {
  switch (c) {
#define OBD_CAT_NAME(name, str) \
  case Category::name:          \
    return str;
    OBD_ERROR_CATEGORIES(OBD_CAT_NAME)
#undef OBD_CAT_NAME
  }
  return "internal";
}

Status Status::from_errno(int err, std::string what) {
  Code code = Code::kEIO;
  if (err == ENOENT) code = Code::kENOENT;
  else if (err == EEXIST) code = Code::kEEXIST;
  else if (err == ENOSPC) code = Code::kENOSPC;
  else if (err == EPIPE) code = Code::kEPIPE;
  else if (err == EROFS) code = Code::kEROFS;
  else if (err == EINVAL) code = Code::kEINVAL;
  else if (err == EOPNOTSUPP) code = Code::kENOTSUP;
  else if (err == EBUSY) code = Code::kEBUSY;
  else if (err == EPERM || err == EACCES) code = Code::kEPERM;
  else if (err == ETIMEDOUT) code = Code::kETIMEDOUT;
  else if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) code = Code::kEAGAIN;
  return Status(code, what + ": " + std::strerror(err));
}

std::string Status::to_string() const {
  if (is_ok()) return "OK";
  return std::string(code_name(code_)) + ": " + message_;
}

}  // namespace obd
