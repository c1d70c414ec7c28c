#include "lsmt/format.h"

#include <cstring>
#include <random>

namespace obd::lsmt {
namespace {

constexpr uint8_t kMagic0[8] = {'L', 'S', 'M', 'T', 0, 1, 2, 0};
constexpr uint8_t kMagic1[16] = {0x65, 0x7E, 0x63, 0xD2, 0x94, 0x44, 0x08, 0x4C,
                                 0xA2, 0xD2, 0xC8, 0xEC, 0x4F, 0xCF, 0xAE, 0x8A};

// Field offsets within the record.
enum : size_t {
  kOffMagic0 = 0,
  kOffMagic1 = 8,
  kOffSize = 24,
  kOffFlags = 28,
  kOffIndexOffset = 32,
  kOffIndexSize = 40,
  kOffVirtualSize = 48,
  kOffUuid = 56,
  kOffParentUuid = 93,
  kOffReserved = 130,
  kOffVersion = 132,
  kOffSubVersion = 133,
  kOffUserTag = 134,
};

template <typename T>
void put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));  // little-endian host (x86_64, aarch64)
}
template <typename T>
T get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool has_lsmt_magic(const uint8_t* p, size_t n) {
  return n >= 24 && std::memcmp(p, kMagic0, 8) == 0 && std::memcmp(p + 8, kMagic1, 16) == 0;
}

std::string uuid_to_string(const Uuid& u) {
  static const char* hex = "0123456789ABCDEF";
  std::string s;
  for (size_t i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) s.push_back('-');
    s.push_back(hex[u[i] >> 4]);
    s.push_back(hex[u[i] & 15]);
  }
  return s;
}

Result<Uuid> parse_uuid(const std::string& s) {
  Uuid u{};
  if (s.size() != 36) return Status(Code::kEINVAL, "UUID '" + s + "' must have 36 characters (8-4-4-4-12)");
  size_t bi = 0;
  for (size_t i = 0; i < 36;) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (s[i] != '-') return Status(Code::kEINVAL, "UUID '" + s + "' needs '-' at position " + std::to_string(i));
      i++;
      continue;
    }
    int hi = hexval(s[i]), lo = hexval(s[i + 1]);
    if (hi < 0 || lo < 0) return Status(Code::kEINVAL, "UUID '" + s + "' has a non-hex digit");
    u[bi++] = uint8_t(hi << 4 | lo);
    i += 2;
  }
  return u;
}

Uuid random_uuid() {
  std::random_device rd;
  Uuid u;
  for (auto& b : u) b = uint8_t(rd());
  u[6] = (u[6] & 0x0f) | 0x40;  // version 4
  u[8] = (u[8] & 0x3f) | 0x80;  // RFC 4122 variant
  return u;
}

void encode_record(const Record& r, uint8_t out[kHeaderSize]) {
  std::memset(out, 0, kHeaderSize);
  std::memcpy(out + kOffMagic0, kMagic0, 8);
  std::memcpy(out + kOffMagic1, kMagic1, 16);
  put<uint32_t>(out + kOffSize, kHeaderStructSize);
  put<uint32_t>(out + kOffFlags, r.flags);
  put<uint64_t>(out + kOffIndexOffset, r.index_offset);
  put<uint64_t>(out + kOffIndexSize, r.index_size);
  put<uint64_t>(out + kOffVirtualSize, r.virtual_size);
  std::string u = uuid_to_string(r.uuid), pu = uuid_to_string(r.parent_uuid);
  std::memcpy(out + kOffUuid, u.data(), 36);
  std::memcpy(out + kOffParentUuid, pu.data(), 36);
  out[kOffVersion] = r.version;
  out[kOffSubVersion] = r.sub_version;
  std::memcpy(out + kOffUserTag, r.user_tag.data(), std::min(r.user_tag.size(), kUserTagSize));
}

// Text of 36 chars then NUL; an all-zero field (never written) means null.
// Upstream copies this text without validating it and only compares UUIDs
// in an optional order check, so unreadable text reads as the null UUID
// instead of making the layer unopenable.
static Uuid decode_uuid_field(const uint8_t* p) {
  std::string s(reinterpret_cast<const char*>(p), strnlen(reinterpret_cast<const char*>(p), 36));
  auto u = parse_uuid(s);
  return u ? u.value() : Uuid{};
}

Result<Record> decode_record(const uint8_t in[kHeaderSize], const std::string& what) {
  if (!has_lsmt_magic(in, kHeaderSize)) return Status(Code::kLSMT_BAD_MAGIC, what + ": no LSMT magic");
  uint32_t size = get<uint32_t>(in + kOffSize);
  if (size != kHeaderStructSize)
    return Status(Code::kLSMT_BAD_HEADER, what + ": field size is " + std::to_string(size) + ", expected 390");
  Record r;
  r.flags = get<uint32_t>(in + kOffFlags);
  r.index_offset = get<uint64_t>(in + kOffIndexOffset);
  r.index_size = get<uint64_t>(in + kOffIndexSize);
  r.virtual_size = get<uint64_t>(in + kOffVirtualSize);
  r.uuid = decode_uuid_field(in + kOffUuid);
  r.parent_uuid = decode_uuid_field(in + kOffParentUuid);
  r.version = in[kOffVersion];
  r.sub_version = in[kOffSubVersion];
  const char* tag = reinterpret_cast<const char*>(in + kOffUserTag);
  r.user_tag.assign(tag, strnlen(tag, kUserTagSize));
  if (r.virtual_size % kSector != 0)
    return Status(Code::kLSMT_BAD_HEADER,
                  what + ": field virtual_size " + std::to_string(r.virtual_size) + " is not a multiple of 512");
  return r;
}

void encode_segment(const Segment& s, uint8_t out[kSegmentSize]) {
  uint64_t w0 = (s.offset & kInvalidOffset) | (uint64_t(s.length & kMaxSegmentLength) << 50);
  uint64_t w1 = (s.moffset & kMaxMoffset) | (uint64_t(s.zeroed) << 55) | (uint64_t(s.tag) << 56);
  put(out, w0);
  put(out + 8, w1);
}

Segment decode_segment(const uint8_t in[kSegmentSize]) {
  uint64_t w0 = get<uint64_t>(in), w1 = get<uint64_t>(in + 8);
  Segment s;
  s.offset = w0 & kInvalidOffset;
  s.length = uint32_t(w0 >> 50);
  s.moffset = w1 & kMaxMoffset;
  s.zeroed = (w1 >> 55) & 1;
  s.tag = uint8_t(w1 >> 56);
  return s;
}

Segment invalid_segment() { return Segment{kInvalidOffset, 0, 0, false, 0}; }

}  // namespace obd::lsmt
