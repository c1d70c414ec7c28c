// JSON output helpers shared by the native tools that print JSON lines for
// the tests (tar_dump, remote_get): escaping, UTF-8 checks, hex.
#pragma once
#include <cstdio>
#include <string>

namespace obd::tools {

inline bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 0 : (c >> 5) == 6 ? 1 : (c >> 4) == 14 ? 2 : (c >> 3) == 30 ? 3 : 9;
    if (n == 9 || i + n >= s.size()) return false;
    for (size_t k = 1; k <= n; k++)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return false;
    i += n + 1;
  }
  return true;
}

inline std::string hex(const std::string& s) {
  static const char d[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += d[c >> 4];
    out += d[c & 15];
  }
  return out;
}

// A JSON string; bytes that are not UTF-8 become U+FFFD (callers add a
// "_hex" field for those).
inline std::string jstr(const std::string& s) {
  std::string out = "\"";
  bool ok = valid_utf8(s);
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20) {
      char b[8];
      snprintf(b, sizeof b, "\\u%04x", c);
      out += b;
    } else if (c >= 0x80 && !ok) {
      out += "\xef\xbf\xbd";
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

}  // namespace obd::tools
