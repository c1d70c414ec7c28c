// The ZFile header/trailer record (format spec §3.2): 512 bytes at both ends
// of the file, a 96-byte little-endian struct followed by zeros.
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "common/status.h"

namespace obd::zfile {

constexpr size_t kRecordSize = 512;   // header and trailer each occupy this
constexpr uint32_t kStructSize = 96;  // the `size` field
constexpr uint64_t kMaxBlocks = 1000000000;  // index_size limit (upstream's)
constexpr uint32_t kMinBlockSize = 512;      // readers; writers use 4 KiB..64 KiB
constexpr uint32_t kMaxBlockSize = 65536;
constexpr size_t kCrcSize = 4;

enum Flags : uint64_t {
  kFlagHeader = 1u << 0,           // header (1) / trailer (0)
  kFlagDataFile = 1u << 1,         // always set
  kFlagSealed = 1u << 2,           // set in trailers
  kFlagHeaderOverwrite = 1u << 3,  // header already carries the final index info
  kFlagDigest = 1u << 4,           // `digest` is valid
  kFlagIndexCompressed = 1u << 5,  // defined upstream, never written, unsupported
};
// What upstream writes (verified against the vectors).
constexpr uint64_t kInitialHeaderFlags = kFlagHeader | kFlagDataFile | kFlagDigest;                    // 0x13
constexpr uint64_t kTrailerFlags = kFlagDataFile | kFlagSealed | kFlagDigest;                          // 0x16
constexpr uint64_t kOverwrittenHeaderFlags = kFlagHeader | kFlagDataFile | kFlagHeaderOverwrite | kFlagDigest;  // 0x1B

enum class Algorithm : uint8_t { kMiniLzo = 0, kLz4 = 1, kZstd = 2 };
const char* algorithm_name(Algorithm a);

// The decoded record. Magic is implicit: encode() writes it, decode() checks it.
struct Record {
  uint32_t size = kStructSize;
  uint32_t digest = 0;
  uint64_t flags = 0;
  uint64_t index_offset = 0;
  uint64_t index_size = 0;  // number of blocks (u32 jump-table entries), not bytes
  uint64_t original_file_size = 0;
  uint32_t index_crc = 0;
  uint32_t block_size = 0;
  uint8_t algo = 0;
  uint8_t level = 0;
  uint8_t use_dict = 0;
  uint32_t dict_size = 0;
  uint8_t verify = 0;

  bool is_header() const { return flags & kFlagHeader; }
  bool has(uint64_t f) const { return (flags & f) == f; }
};

using RecordBytes = std::array<uint8_t, kRecordSize>;

// Serializes `r` with magic; when kFlagDigest is set, computes and stores the
// digest (raw CRC-32C of the 512 bytes with the digest field zeroed).
RecordBytes encode(const Record& r);

// True when the bytes begin with both magic strings.
bool has_magic(const uint8_t* p, size_t n);

// Decodes without checks beyond the magic (ZFILE_BAD_MAGIC). `where` names the
// file and offset in messages.
Result<Record> decode(const RecordBytes& b, const std::string& where);

// The digest the record's bytes should carry.
uint32_t compute_digest(const RecordBytes& b);

// Structural checks shared by header and trailer: struct size, algorithm,
// block size, dictionary, index compression. Codes: ZFILE_BAD_HEADER, ENOTSUP.
Status validate_options(const Record& r, const std::string& where);
// Digest check for records with kFlagDigest (ZFILE_DIGEST_MISMATCH).
Status validate_digest(const RecordBytes& b, const Record& r, const std::string& where);

}  // namespace obd::zfile
