#include "lsmt/commit.h"

#include <vector>

namespace obd::lsmt {

namespace {
constexpr uint64_t kPieceSectors = 32 * 1024 / kSector;  // commit copies 32 KiB pieces
constexpr uint64_t kReadSectors = 8192;                   // read 4 MiB of source at a time
constexpr size_t kIndexPad = 256;                         // entries: 4096 bytes
}  // namespace

bool can_merge(const Segment& a, const Segment& b) {
  return a.end() == b.offset && a.mend() == b.moffset && a.zeroed == b.zeroed && a.tag == b.tag &&
         uint64_t(a.length) + b.length < kMaxSegmentLength;
}

Status commit_segments(std::span<const Segment> segs, const SegmentReader& read, const Record& source,
                       const CommitOptions& opts, Sink& out) {
  if (opts.user_tag.size() > kUserTagSize)
    return Status(Code::kEINVAL, "commit message is " + std::to_string(opts.user_tag.size()) +
                                     " bytes; at most 256 fit in the user_tag field");
  Record r;
  r.virtual_size = source.virtual_size;
  r.uuid = opts.uuid.value_or(Uuid{});
  r.parent_uuid = opts.parent_uuid.value_or(source.parent_uuid);
  r.user_tag = opts.user_tag;
  r.flags = kFlagHeader | kFlagData | kFlagSealed;
  std::vector<uint8_t> rec(kHeaderSize);
  encode_record(r, rec.data());
  OBD_TRY(out.append(rec.data(), rec.size()));

  std::vector<Segment> index;
  auto emit = [&](const Segment& s) {
    if (!index.empty() && can_merge(index.back(), s)) {
      index.back().length += s.length;
    } else {
      index.push_back(s);
    }
  };
  uint64_t pos = kHeaderSize / kSector;  // data position in sectors
  std::vector<uint8_t> buf(kReadSectors * kSector);
  for (const Segment& s : segs) {
    if (s.zeroed) {
      emit({s.offset, s.length, pos, true, s.tag});
      continue;
    }
    for (uint64_t done = 0; done < s.length;) {
      uint64_t n = std::min<uint64_t>(s.length - done, kReadSectors);
      Segment part = s;
      part.trim_front(done);
      part.trim_back_to(part.offset + n);
      OBD_TRY(read(part, buf.data()));
      OBD_TRY(out.append(buf.data(), n * kSector));
      for (uint64_t k = 0; k < n; k += kPieceSectors) {
        uint32_t len = uint32_t(std::min(kPieceSectors, n - k));
        emit({part.offset + k, len, pos, false, s.tag});
        pos += len;
      }
      done += n;
    }
  }

  size_t padded = (index.size() + kIndexPad - 1) / kIndexPad * kIndexPad;
  // Readers (ours and upstream's) refuse larger committed indexes, padding included.
  if (padded > kMaxRoIndexSize)
    return Status(Code::kLSMT_INDEX_TOO_LARGE, "the committed index would have " + std::to_string(padded) +
                                                   " entries; readers accept at most 1000000");
  std::vector<uint8_t> ibuf(padded * kSegmentSize);
  Segment pad = invalid_segment();
  for (size_t i = 0; i < padded; i++) encode_segment(i < index.size() ? index[i] : pad, ibuf.data() + i * kSegmentSize);
  OBD_TRY(out.append(ibuf.data(), ibuf.size()));

  r.flags = kFlagData | kFlagSealed;
  r.index_offset = pos * kSector;
  r.index_size = padded;
  encode_record(r, rec.data());
  return out.append(rec.data(), rec.size());
}

}  // namespace obd::lsmt
