// On-disk structures of an LSMT layer (docs/format.md §2): the 4096-byte
// header/trailer record and the 16-byte index entry. Pure encode/decode and
// validation; no I/O.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace obd::lsmt {

constexpr uint64_t kSector = 512;
constexpr uint64_t kHeaderSize = 4096;          // header and trailer record size
constexpr uint32_t kHeaderStructSize = 390;     // meaningful bytes of the record
constexpr uint32_t kMaxSegmentLength = 16383;   // sectors in one index entry (14 bits)
constexpr uint64_t kInvalidOffset = (uint64_t(1) << 50) - 1;  // padding entry marker
constexpr uint64_t kMaxMoffset = (uint64_t(1) << 55) - 1;
constexpr uint64_t kMaxRoIndexSize = 1000000;    // entries in a committed index
constexpr uint64_t kMaxRwIndexSize = 128000000;  // entries in an RW index / merged index
constexpr size_t kMaxStackLayers = 255;
constexpr size_t kUserTagSize = 256;

// flags of the header/trailer record
constexpr uint32_t kFlagHeader = 1u << 0;  // 1 = header, 0 = trailer
constexpr uint32_t kFlagData = 1u << 1;    // data file (0 = RW index file)
constexpr uint32_t kFlagSealed = 1u << 2;
constexpr uint32_t kFlagSparse = 1u << 4;

using Uuid = std::array<uint8_t, 16>;

struct Record {
  uint32_t flags = 0;
  uint64_t index_offset = 0;  // bytes
  uint64_t index_size = 0;    // entries
  uint64_t virtual_size = 0;  // bytes
  Uuid uuid{};
  Uuid parent_uuid{};
  uint8_t version = 1;
  uint8_t sub_version = 1;
  std::string user_tag;  // at most 256 bytes

  bool is_header() const { return flags & kFlagHeader; }
  bool is_data() const { return flags & kFlagData; }
  bool is_sealed() const { return flags & kFlagSealed; }
  bool is_sparse() const { return flags & kFlagSparse; }
};

// Writes the 4096-byte record.
void encode_record(const Record& r, uint8_t out[kHeaderSize]);
// Parses a record; checks the magic and the struct size. `what` names the
// file and record ("A.commit trailer") in errors.
Result<Record> decode_record(const uint8_t in[kHeaderSize], const std::string& what);
// True when the first bytes carry the LSMT magic (the snapshotter's probe).
bool has_lsmt_magic(const uint8_t* p, size_t n);

// UUID text: uppercase 8-4-4-4-12 of the raw bytes; parse accepts any case.
std::string uuid_to_string(const Uuid& u);
Result<Uuid> parse_uuid(const std::string& s);
Uuid random_uuid();

// One index entry ("SegmentMapping"): sectors throughout.
struct Segment {
  uint64_t offset = 0;   // LBA in the virtual device
  uint64_t moffset = 0;  // sector in the backing file
  uint32_t length = 0;   // sectors
  bool zeroed = false;
  uint8_t tag = 0;       // which backing file (stack position; TurboOCI 0/1)

  Segment() = default;
  // Arguments in on-disk field order; members are laid out for a 24-byte
  // struct, so merged indexes take a quarter less memory and cache.
  Segment(uint64_t offset_, uint32_t length_, uint64_t moffset_, bool zeroed_ = false, uint8_t tag_ = 0)
      : offset(offset_), moffset(moffset_), length(length_), zeroed(zeroed_), tag(tag_) {}

  uint64_t end() const { return offset + length; }
  // End of the backing range; a zeroed entry maps nothing.
  uint64_t mend() const { return moffset + (zeroed ? 0 : length); }
  bool is_invalid() const { return offset == kInvalidOffset; }
  // Drops the first `n` sectors, keeping the mapping of the rest. A zeroed
  // entry keeps its moffset (= mend), as upstream does, so it stays within
  // the data range the load checks demand.
  void trim_front(uint64_t n) {
    offset += n;
    length -= uint32_t(n);
    if (!zeroed) moffset += n;
  }
  void trim_back_to(uint64_t new_end) { length = uint32_t(new_end - offset); }
  bool operator==(const Segment&) const = default;
};

constexpr size_t kSegmentSize = 16;
void encode_segment(const Segment& s, uint8_t out[kSegmentSize]);
Segment decode_segment(const uint8_t in[kSegmentSize]);
static_assert(sizeof(Segment) == 24);
Segment invalid_segment();

}  // namespace obd::lsmt
