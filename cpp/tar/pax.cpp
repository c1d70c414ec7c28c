#include "tar/pax.h"

namespace obd::tar {

std::string parse_pax_records(std::string_view data, PaxRecords* out) {
  size_t pos = 0;
  while (pos < data.size()) {
    std::string_view rest = data.substr(pos);
    // Some writers pad the data with NULs; nothing else may follow the records.
    if (rest.find_first_not_of('\0') == std::string_view::npos) break;
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 20) {
      return "pax record at byte " + std::to_string(pos) + " has no length";
    }
    uint64_t len;
    if (!parse_decimal(rest.substr(0, sp), UINT64_MAX, &len)) {
      return "pax record at byte " + std::to_string(pos) + " has a bad length";
    }
    if (len > rest.size()) {
      return "pax record at byte " + std::to_string(pos) + " claims " + std::to_string(len) +
             " bytes, only " + std::to_string(rest.size()) + " left in the header";
    }
    if (len < sp + 3 || rest[len - 1] != '\n') {
      return "pax record at byte " + std::to_string(pos) + " is malformed (length " + std::to_string(len) + ")";
    }
    std::string_view kv = rest.substr(sp + 1, len - sp - 2);
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return "pax record at byte " + std::to_string(pos) + " has no key=value";
    }
    out->emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    pos += len;
  }
  return "";
}

bool parse_decimal(std::string_view s, uint64_t max, uint64_t* out) {
  if (s.empty() || s.size() > 20) return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = uint64_t(c - '0');
    if (v > (max - d) / 10) return false;
    v = v * 10 + d;
  }
  *out = v;
  return true;
}

bool parse_pax_time(std::string_view s, int64_t* sec, uint32_t* nsec) {
  bool neg = !s.empty() && s[0] == '-';
  if (neg) s.remove_prefix(1);
  size_t dot = s.find('.');
  std::string_view whole = s.substr(0, dot), frac = dot == std::string_view::npos ? "" : s.substr(dot + 1);
  uint64_t w;
  if (!parse_decimal(whole, uint64_t(INT64_MAX) - 1, &w)) return false;
  uint32_t ns = 0;
  for (size_t i = 0; i < frac.size(); i++) {
    if (frac[i] < '0' || frac[i] > '9') return false;
    if (i < 9) ns = ns * 10 + uint32_t(frac[i] - '0');  // digits past nanoseconds are dropped
  }
  for (size_t i = frac.size(); i < 9; i++) ns *= 10;
  if (!neg) {
    *sec = int64_t(w);
    *nsec = ns;
  } else if (ns == 0) {
    *sec = -int64_t(w);
    *nsec = 0;
  } else {
    // -1.25 is 1.25 s before the epoch: second -2, plus 0.75 s.
    *sec = -int64_t(w) - 1;
    *nsec = 1000000000u - ns;
  }
  return true;
}

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percent_decode(std::string_view s, std::string* out) {
  out->clear();
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] != '%') {
      *out += s[i];
      continue;
    }
    if (i + 2 >= s.size()) return false;
    int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += char(hi * 16 + lo);
    i += 2;
  }
  return true;
}

bool base64_decode(std::string_view s, std::string* out) {
  out->clear();
  uint32_t acc = 0;
  int bits = 0;
  for (char c : s) {
    int v;
    if (c >= 'A' && c <= 'Z') v = c - 'A';
    else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
    else if (c >= '0' && c <= '9') v = c - '0' + 52;
    else if (c == '+') v = 62;
    else if (c == '/') v = 63;
    else if (c == '=') break;  // padding ends the data (libarchive may omit it)
    else return false;
    acc = (acc << 6) | uint32_t(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      *out += char((acc >> bits) & 0xff);
    }
  }
  return true;
}

}  // namespace obd::tar
