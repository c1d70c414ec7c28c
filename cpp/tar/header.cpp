#include "tar/header.h"

#include <cstdio>
#include <cstring>

namespace obd::tar {

Format detect_format(const uint8_t* blk) {
  const char* magic = reinterpret_cast<const char*>(blk + kMagic.off);
  if (std::memcmp(magic, "ustar  \0", 8) == 0) return Format::kGnu;
  if (std::memcmp(magic, "ustar\0", 6) == 0) {
    return std::memcmp(blk + 508, "tar\0", 4) == 0 ? Format::kStar : Format::kUstar;
  }
  return Format::kV7;
}

bool is_zero_block(const uint8_t* blk) {
  for (size_t i = 0; i < kBlock; i++)
    if (blk[i]) return false;
  return true;
}

// Sums of the block with the checksum field taken as spaces: unsigned and
// signed bytes (historic tars summed signed chars).
static void sums(const uint8_t* blk, int64_t* usum, int64_t* ssum) {
  int64_t u = 0, s = 0;
  for (size_t i = 0; i < kBlock; i++) {
    bool in_field = i >= kChksum.off && i < kChksum.off + kChksum.len;
    uint8_t b = in_field ? uint8_t(' ') : blk[i];
    u += b;
    s += int8_t(b);
  }
  *usum = u;
  *ssum = s;
}

bool checksum_ok(const uint8_t* blk) {
  int64_t stored;
  if (!parse_number(blk, kChksum, &stored)) return false;
  int64_t usum, ssum;
  sums(blk, &usum, &ssum);
  return stored == usum || stored == ssum;
}

bool is_posix_ustar(const uint8_t* blk) {
  return std::memcmp(blk + kMagic.off, "ustar\0", 6) == 0 && std::memcmp(blk + kVersion.off, "00", 2) == 0;
}

bool put_octal(uint8_t* blk, Field f, uint64_t v) {
  // digits, then " \0" (8-byte fields) or " " (wider ones), as upstream.
  size_t digits = f.len == 8 ? 6 : f.len - 1;
  if (digits < 22 && (v >> (3 * digits)) != 0) return false;
  char tmp[32];
  std::snprintf(tmp, sizeof tmp, "%*llo ", int(digits), static_cast<unsigned long long>(v));
  std::memset(blk + f.off, 0, f.len);
  std::memcpy(blk + f.off, tmp, digits + 1);
  return true;
}

bool put_str(uint8_t* blk, Field f, std::string_view s) {
  if (s.size() > f.len) return false;
  std::memset(blk + f.off, 0, f.len);
  std::memcpy(blk + f.off, s.data(), s.size());
  return true;
}

void seal_ustar(uint8_t* blk) {
  std::memcpy(blk + kMagic.off, "ustar\0", 6);
  std::memcpy(blk + kVersion.off, "00", 2);
  int64_t usum, ssum;
  sums(blk, &usum, &ssum);
  put_octal(blk, kChksum, uint64_t(usum));
}

static bool pad(uint8_t c) { return c == ' ' || c == 0; }

bool parse_number(const uint8_t* f, size_t len, int64_t* out) {
  if (len > 0 && (f[0] & 0x80)) {
    // Base-256: bit 6 of the first byte is the sign; negative values are
    // stored inverted (two's complement over the whole field).
    uint8_t inv = (f[0] & 0x40) ? 0xff : 0;
    uint64_t x = 0;
    for (size_t i = 0; i < len; i++) {
      uint8_t c = f[i] ^ inv;
      if (i == 0) c &= 0x7f;
      if (x >> 56) return false;
      x = (x << 8) | c;
    }
    if (x >> 63) return false;
    *out = inv ? ~int64_t(x) : int64_t(x);
    return true;
  }
  size_t i = 0, end = len;
  while (i < end && pad(f[i])) i++;
  while (end > i && pad(f[end - 1])) end--;
  uint64_t v = 0;
  for (; i < end; i++) {
    if (f[i] < '0' || f[i] > '7') return false;
    if (v >> 60) return false;  // the next digit would pass int64
    v = v * 8 + (f[i] - '0');
  }
  if (v >> 63) return false;
  *out = int64_t(v);
  return true;
}

std::string field_str(const uint8_t* blk, Field f) {
  const char* p = reinterpret_cast<const char*>(blk + f.off);
  return std::string(p, strnlen(p, f.len));
}

std::string printable(const std::string& s, size_t max) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < max; i++) {
    unsigned char c = s[i];
    if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"') {
      out += char(c);
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  if (s.size() > max) out += "...";
  return out;
}

}  // namespace obd::tar
