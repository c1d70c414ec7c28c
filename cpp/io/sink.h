// Sink: a strictly sequential writer (a commit's output, a ZFile writer).
#pragma once
#include "io/file.h"

namespace obd {

class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status append(const void* buf, size_t len) = 0;
};

// Appends to a File from offset 0 on.
class FileSink final : public Sink {
 public:
  explicit FileSink(FilePtr f) : f_(std::move(f)) {}
  Status append(const void* buf, size_t len) override {
    OBD_TRY(f_->pwrite(buf, len, pos_));
    pos_ += len;
    return Status::ok();
  }

 private:
  FilePtr f_;
  uint64_t pos_ = 0;
};

// Copies all of `src` (from offset 0 to its size) into `out`.
Status copy_to_sink(File& src, Sink& out);

}  // namespace obd
