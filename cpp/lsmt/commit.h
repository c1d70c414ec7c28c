// Compaction of a resolved index into a committed read-only layer, exactly as
// overlaybd-commit lays it out (§2.3): header with empty index fields, data
// in LBA order copied in 32 KiB pieces, pieces merged left to right under the
// strict `< 16383` rule, index padded to 256 entries, trailer.
#pragma once
#include <functional>
#include <optional>
#include <span>

#include "io/file.h"
#include "lsmt/format.h"

namespace obd::lsmt {

// Where a commit writes: strictly sequential (a plain file or a ZFile writer).
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
  uint64_t written() const { return pos_; }

 private:
  FilePtr f_;
  uint64_t pos_ = 0;
};

struct CommitOptions {
  std::optional<Uuid> uuid;         // --uuid; null UUID when absent
  std::optional<Uuid> parent_uuid;  // --parent-uuid; the source's parent when absent
  std::string user_tag;             // -m, at most 256 bytes
};

// Reads `seg.length` sectors of a non-zeroed segment's data into `buf`.
using SegmentReader = std::function<Status(const Segment& seg, void* buf)>;

// Writes a committed layer of `segs` (sorted, non-overlapping; tags are kept,
// and entries with different tags are never merged).
Status commit_segments(std::span<const Segment> segs, const SegmentReader& read, const Record& source,
                       const CommitOptions& opts, Sink& out);

// The merge step of commit, exposed for tests: one left-to-right pass.
bool can_merge(const Segment& a, const Segment& b);

}  // namespace obd::lsmt
