// Compaction of a resolved index into a committed read-only layer, exactly as
// overlaybd-commit lays it out (§2.3): header with empty index fields, data
// in LBA order copied in 32 KiB pieces, pieces merged left to right under the
// strict `< 16383` rule, index padded to 256 entries, trailer.
#pragma once
#include <functional>
#include <optional>
#include <span>

#include "io/sink.h"
#include "lsmt/format.h"

namespace obd::lsmt {

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
