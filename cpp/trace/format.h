// The binary trace file of upstream overlaybd's prefetcher (format spec
// §6.4), byte for byte: a 24-byte header then 24-byte records, all little
// endian, checksummed with the raw CRC-32C update over the record bytes.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace obd::trace {

constexpr uint32_t kMagic = 0xC2EF1820;  // upstream: CRC32 of "Container Image Trace Format"
constexpr size_t kHeaderSize = 24;       // {u32 magic; pad 4; u64 data_size; u32 checksum; pad 4}
constexpr size_t kRecordSize = 24;       // {u8 op; pad 3; u32 layer; u64 count; i64 offset}
constexpr uint8_t kOpRead = 'R', kOpWrite = 'W';
// Larger traces (44 M records) are neither recorded nor loaded.
constexpr uint64_t kMaxTraceSize = 1ull << 30;

// One read (or write) issued to a lower layer's LSMT file: `count` bytes at
// `offset`, `layer` its position in the image's lowers (bottom first).
struct Record {
  uint8_t op = kOpRead;
  uint32_t layer = 0;
  uint64_t count = 0;
  int64_t offset = 0;
  bool operator==(const Record&) const = default;
};

// Header and records; padding bytes are written as zeros.
std::vector<uint8_t> encode(std::span<const Record> records);

// Checks the magic, that the file is 24 + data_size bytes (data_size a
// multiple of 24) and the checksum (padding included as stored). Failures
// are TRACE_CORRUPT naming `name` and the field. Ops and offsets are kept
// as stored; replay decides what to do with them.
Result<std::vector<Record>> decode(std::span<const uint8_t> bytes, const std::string& name);

}  // namespace obd::trace
