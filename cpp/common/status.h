// Status and Result: how every core function reports failure. No exceptions
// cross module boundaries; the N-API layer maps `code` to OverlaybdError.code.
#pragma once
#include <cerrno>
#include <cstdint>
#include <string>
#include <utility>
#include <variant>

namespace obd {

// The stable error codes, shared with TypeScript: lib/errors.ts lists the
// same names with the same categories, and test/errors.test.ts checks both
// against the list the addon exports (`errorCodes`).
//
// Each code has a category for policy code to ask (Status::category()),
// first the remote blob cache of the lazy-read issue:
// retry a transient failure, evict and refetch corrupt data, and so on.
#define OBD_ERROR_CODES(X)                                                               \
  X(kOK, "OK", kOk)                                                                      \
  X(kEINVAL, "EINVAL", kInvalidArgument)        /* bad argument from the caller */        \
  X(kEIO, "EIO", kIo)                           /* the OS failed an I/O call (errno in message) */ \
  X(kEAGAIN, "EAGAIN", kTransient)              /* a passing failure: try again */        \
  X(kETIMEDOUT, "ETIMEDOUT", kTransient)        /* gave up waiting within a time limit */ \
  X(kENOENT, "ENOENT", kNotFound)               /* a file does not exist */               \
  X(kEEXIST, "EEXIST", kInvalidArgument)        /* a file that must not exist does */     \
  X(kEPERM, "EPERM", kInvalidArgument)          /* not permitted (access denied) */       \
  X(kEBUSY, "EBUSY", kBusy)                     /* held by another user (a writer lock) */\
  X(kCLOSED, "CLOSED", kClosed)                 /* the object was closed */               \
  X(kENOSPC, "ENOSPC", kIo)                     /* out of space (ext4 or host) */         \
  X(kEPIPE, "EPIPE", kIo)                       /* the reader of a pipe went away */      \
  X(kEROFS, "EROFS", kInvalidArgument)          /* write to a read-only image or layer */ \
  X(kENOTSUP, "ENOTSUP", kUnsupported)          /* a feature this build or format lacks */\
  X(kOUT_OF_RANGE, "OUT_OF_RANGE", kInvalidArgument) /* an access beyond the virtual size */ \
  X(kUNALIGNED, "UNALIGNED", kInvalidArgument)  /* offset or length not a multiple of 512 */ \
  X(kLSMT_BAD_MAGIC, "LSMT_BAD_MAGIC", kCorrupt)                                         \
  X(kLSMT_BAD_HEADER, "LSMT_BAD_HEADER", kCorrupt) /* header/trailer fields inconsistent */\
  X(kLSMT_BAD_INDEX, "LSMT_BAD_INDEX", kCorrupt) /* entries out of order, range or overlap */\
  X(kLSMT_INDEX_TOO_LARGE, "LSMT_INDEX_TOO_LARGE", kCorrupt)                             \
  X(kLSMT_TRUNCATED, "LSMT_TRUNCATED", kCorrupt)                                         \
  X(kLSMT_NOT_SEALED, "LSMT_NOT_SEALED", kInvalidArgument)                               \
  X(kLSMT_TOO_MANY_LAYERS, "LSMT_TOO_MANY_LAYERS", kInvalidArgument)                     \
  X(kZFILE_BAD_MAGIC, "ZFILE_BAD_MAGIC", kCorrupt)                                       \
  X(kZFILE_BAD_HEADER, "ZFILE_BAD_HEADER", kCorrupt)                                     \
  X(kZFILE_DIGEST_MISMATCH, "ZFILE_DIGEST_MISMATCH", kCorrupt)                           \
  X(kZFILE_INDEX_CRC_MISMATCH, "ZFILE_INDEX_CRC_MISMATCH", kCorrupt)                     \
  X(kZFILE_BAD_INDEX, "ZFILE_BAD_INDEX", kCorrupt)                                       \
  X(kZFILE_CRC_MISMATCH, "ZFILE_CRC_MISMATCH", kCorrupt)                                 \
  X(kZFILE_DECOMPRESS_FAILED, "ZFILE_DECOMPRESS_FAILED", kCorrupt)                       \
  X(kZFILE_TRUNCATED, "ZFILE_TRUNCATED", kCorrupt)                                       \
  X(kTAR_BAD_HEADER, "TAR_BAD_HEADER", kCorrupt)                                         \
  X(kTAR_TRUNCATED, "TAR_TRUNCATED", kCorrupt)                                           \
  X(kTAR_UNSAFE_PATH, "TAR_UNSAFE_PATH", kInvalidArgument)                               \
  X(kGZIP_CORRUPT, "GZIP_CORRUPT", kCorrupt)                                             \
  X(kZSTD_CORRUPT, "ZSTD_CORRUPT", kCorrupt)                                             \
  X(kEXT4_ERROR, "EXT4_ERROR", kCorrupt) /* libext2fs returned an error (errcode in msg) */ \
  X(kTRACE_CORRUPT, "TRACE_CORRUPT", kCorrupt) /* prefetch trace: magic, size or checksum */ \
  X(kDIGEST_MISMATCH, "DIGEST_MISMATCH", kCorrupt) /* a blob or diff_id sha256 differs */ \
  X(kINTERNAL, "INTERNAL", kInternal)

// What a caller may do about a failure, independent of its exact code.
#define OBD_ERROR_CATEGORIES(X) \
  X(kOk, "ok")                  \
  X(kTransient, "transient")    /* retry: the same call may succeed later */ \
  X(kCorrupt, "corrupt")        /* stored bytes are wrong: evict and refetch */ \
  X(kNotFound, "not_found")                                                  \
  X(kInvalidArgument, "invalid_argument") /* the caller asked for something wrong */ \
  X(kUnsupported, "unsupported")                                             \
  X(kClosed, "closed")          /* the object is closed; reopen */           \
  X(kBusy, "busy")              /* another user holds it */                  \
  X(kIo, "io")                  /* the OS refused: disk error, no space */   \
  X(kInternal, "internal")

enum class Category : int {
#define OBD_CAT_ENUM(name, str) name,
  OBD_ERROR_CATEGORIES(OBD_CAT_ENUM)
#undef OBD_CAT_ENUM
};

enum class Code : int {
#define OBD_ENUM(name, str, cat) name,
  OBD_ERROR_CODES(OBD_ENUM)
#undef OBD_ENUM
};

const char* code_name(Code c);
Category code_category(Code c);
const char* category_name(Category c);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }
  // An OS error: message gets ": <strerror>" appended.
  static Status from_errno(int err, std::string what);

  bool is_ok() const { return code_ == Code::kOK; }
  explicit operator bool() const { return is_ok(); }
  Code code() const { return code_; }
  Category category() const { return code_category(code_); }
  bool is(Category c) const { return category() == c; }
  const std::string& message() const { return message_; }
  // Prefix context ("reading layer 3: ") while keeping the code.
  Status with_context(const std::string& ctx) const {
    return is_ok() ? *this : Status(code_, ctx + ": " + message_);
  }
  std::string to_string() const;

 private:
  Code code_ = Code::kOK;
  std::string message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Status s) : v_(std::move(s)) {}
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T& operator*() & { return value(); }
  T* operator->() { return &value(); }
  Status status() const { return is_ok() ? Status() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace obd

// Early-return helpers; keep call sites short without hiding control flow.
#define OBD_TRY(expr)                          \
  do {                                         \
    ::obd::Status _obd_s = (expr);             \
    if (!_obd_s.is_ok()) return _obd_s;        \
  } while (0)

#define OBD_CONCAT_(a, b) a##b
#define OBD_CONCAT(a, b) OBD_CONCAT_(a, b)
#define OBD_ASSIGN_OR_RETURN(lhs, expr) OBD_ASSIGN_OR_RETURN_(OBD_CONCAT(_obd_r, __LINE__), lhs, expr)
#define OBD_ASSIGN_OR_RETURN_(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.is_ok()) return tmp.status();      \
  lhs = std::move(tmp).value()
