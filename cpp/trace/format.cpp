#include "trace/format.h"

#include <cstdio>
#include <cstring>

#include "common/crc32c.h"

namespace obd::trace {

namespace {
// The host is little endian (as everywhere in the core); fields are copied
// one by one so padding never depends on a struct layout.
template <typename T>
void put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}
template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

std::string hex(uint32_t v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08X", v);
  return b;
}

Status corrupt(const std::string& name, const std::string& what) {
  return Status(Code::kTRACE_CORRUPT, name + ": " + what);
}
}  // namespace

std::vector<uint8_t> encode(std::span<const Record> records) {
  std::vector<uint8_t> out(kHeaderSize + records.size() * kRecordSize, 0);
  uint8_t* p = out.data() + kHeaderSize;
  for (const Record& r : records) {
    p[0] = r.op;
    put<uint32_t>(p + 4, r.layer);
    put<uint64_t>(p + 8, r.count);
    put<int64_t>(p + 16, r.offset);
    p += kRecordSize;
  }
  const uint64_t data_size = records.size() * kRecordSize;
  put<uint32_t>(out.data(), kMagic);
  put<uint64_t>(out.data() + 8, data_size);
  put<uint32_t>(out.data() + 16, crc32c_update(0, out.data() + kHeaderSize, data_size));
  return out;
}

Result<std::vector<Record>> decode(std::span<const uint8_t> bytes, const std::string& name) {
  if (bytes.size() < kHeaderSize)
    return corrupt(name, "trace header truncated: " + std::to_string(bytes.size()) + " of 24 bytes");
  const uint8_t* h = bytes.data();
  if (uint32_t magic = get<uint32_t>(h); magic != kMagic)
    return corrupt(name, "trace magic " + hex(magic) + " is not " + hex(kMagic));
  const uint64_t data_size = get<uint64_t>(h + 8);
  // Compared without adding to data_size, which comes from the file.
  if (data_size != bytes.size() - kHeaderSize)
    return corrupt(name, "trace data_size " + std::to_string(data_size) + " does not match the file size " +
                             std::to_string(bytes.size()) + " (24 + data_size expected)");
  if (data_size % kRecordSize != 0)
    return corrupt(name, "trace data_size " + std::to_string(data_size) + " is not a multiple of 24");
  const uint32_t want = get<uint32_t>(h + 16);
  const uint32_t got = crc32c_update(0, h + kHeaderSize, data_size);
  if (got != want)
    return corrupt(name, "trace checksum " + hex(want) + " does not match the records (" + hex(got) + ")");
  std::vector<Record> out(data_size / kRecordSize);
  const uint8_t* p = h + kHeaderSize;
  for (Record& r : out) {
    r.op = p[0];
    r.layer = get<uint32_t>(p + 4);
    r.count = get<uint64_t>(p + 8);
    r.offset = get<int64_t>(p + 16);
    p += kRecordSize;
  }
  return out;
}

}  // namespace obd::trace
