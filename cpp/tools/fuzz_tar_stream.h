// obd_fuzz target "tar_stream": the layer reader (cpp/archive) on mutated
// plain and gzip tars. Every entry's data is read to the end; errors are
// expected, crashes, sanitizer reports and hangs are not.
#pragma once
#include <zlib.h>

#include <cstdint>
#include <cstring>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "archive/byte_stream.h"
#include "archive/tar_reader.h"

namespace obd::fuzz {

using TarBytes = std::vector<uint8_t>;
using Note = void (*)(const Status&);

inline void tar_stream_read_all(ByteStreamPtr raw, Note note) {
  auto s = make_decompressing_stream(std::move(raw));
  if (!s.is_ok()) return note(s.status());
  auto tr = TarReader::open(std::move(s.value()));
  if (!tr.is_ok()) return note(tr.status());
  uint8_t buf[8192];
  TarEntry e;
  for (;;) {
    auto more = tr.value()->next(&e);
    if (!more.is_ok()) return note(more.status());
    if (!more.value()) break;
    // The reader's own invariants: a sparse map fits the real size.
    for (const Extent& x : e.sparse) {
      if (x.off > e.size || x.len > e.size - x.off) std::abort();
    }
    // Skip the data of every other entry, to cover next()'s skipping too.
    if (e.data_offset & 512) continue;
    for (;;) {
      auto k = tr.value()->read_data(buf, sizeof buf);
      if (!k.is_ok()) return note(k.status());
      if (k.value() == 0) break;
    }
  }
  note(Status::ok());
}

inline TarBytes tar_gzip(const uint8_t* d, size_t n) {
  uLongf len = compressBound(uLong(n)) + 64;
  TarBytes out(len);
  z_stream zs{};
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return {};
  zs.next_in = const_cast<Bytef*>(d);
  zs.avail_in = uInt(n);
  zs.next_out = out.data();
  zs.avail_out = uInt(out.size());
  int rc = deflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return rc == Z_STREAM_END ? out : TarBytes{};
}

// Plain (or gzip, when the mutant starts with its magic) as given, then the
// same bytes behind a valid gzip layer.
inline int fuzz_tar_stream(const uint8_t* d, size_t n, Note note) {
  tar_stream_read_all(make_memory_stream(d, n, "mutant"), note);
  if (n < (1 << 20) && (n % 3) == 0) {
    TarBytes gz = tar_gzip(d, n);
    tar_stream_read_all(make_memory_stream(gz.data(), gz.size(), "mutant.gz"), note);
  }
  return 0;
}

// ---- seeds: small archives of each header flavour, built byte by byte ----

inline void tar_set_checksum(uint8_t* h) {
  std::memset(h + 148, ' ', 8);
  unsigned sum = 0;
  for (int i = 0; i < 512; i++) sum += h[i];
  std::snprintf(reinterpret_cast<char*>(h + 148), 8, "%06o", sum & 0777777);
}

inline void tar_add(TarBytes& out, const std::string& name, char type, const std::string& data,
                    const char* magic = "ustar\00000", const std::string& link = "") {
  uint8_t h[512] = {};
  std::memcpy(h, name.data(), std::min<size_t>(name.size(), 100));
  std::snprintf(reinterpret_cast<char*>(h + 100), 8, "%07o", 0644);
  std::snprintf(reinterpret_cast<char*>(h + 108), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 116), 8, "%07o", 0);
  std::snprintf(reinterpret_cast<char*>(h + 124), 12, "%011zo", data.size());
  std::snprintf(reinterpret_cast<char*>(h + 136), 12, "%011o", 1700000000u);
  h[156] = uint8_t(type);
  std::memcpy(h + 157, link.data(), std::min<size_t>(link.size(), 100));
  std::memcpy(h + 257, magic, 8);
  tar_set_checksum(h);
  out.insert(out.end(), h, h + 512);
  out.insert(out.end(), data.begin(), data.end());
  out.resize(out.size() + (512 - data.size() % 512) % 512, 0);
}

inline std::string tar_pax_record(const std::string& k, const std::string& v) {
  std::string body = " " + k + "=" + v + "\n";
  size_t n = body.size() + 1;
  while (std::to_string(n).size() + body.size() != n) n = std::to_string(n).size() + body.size();
  return std::to_string(n) + body;
}

inline std::vector<TarBytes> tar_stream_seeds() {
  TarBytes a;
  tar_add(a, "dir/", '5', "");
  tar_add(a, "dir/file.txt", '0', "hello world\n");
  tar_add(a, "dir/link", '2', "", "ustar\00000", "file.txt");
  tar_add(a, "dir/hard", '1', "", "ustar\00000", "dir/file.txt");
  tar_add(a, "PaxHeaders/x", 'x',
          tar_pax_record("path", "pax/long/" + std::string(150, 'p')) + tar_pax_record("mtime", "1.5") +
              tar_pax_record("SCHILY.xattr.user.k", "v"));
  tar_add(a, "short", '0', "pax data");
  tar_add(a, "./@LongLink", 'L', std::string(200, 'l'), "ustar  \0");
  tar_add(a, "short", '0', "gnu data", "ustar  \0");
  tar_add(a, "PaxHeaders/s", 'x',
          tar_pax_record("GNU.sparse.major", "1") + tar_pax_record("GNU.sparse.minor", "0") +
              tar_pax_record("GNU.sparse.name", "sparse") + tar_pax_record("GNU.sparse.realsize", "100000"));
  std::string map = "2\n0\n10\n90000\n5\n";
  map.resize(512, '\0');
  tar_add(a, "GNUSparseFile.0/sparse", '0', map + std::string(15, 's'));
  tar_add(a, "PaxHeaders/t", 'x',
          tar_pax_record("GNU.sparse.size", "4096") + tar_pax_record("GNU.sparse.map", "0,1,4000,2"));
  tar_add(a, "sparse01", '0', "abc");
  a.resize(a.size() + 1024, 0);

  // Old GNU sparse with one extension block.
  TarBytes b;
  uint8_t h[512] = {};
  std::memcpy(h, "oldsparse", 9);
  std::snprintf(reinterpret_cast<char*>(h + 100), 8, "%07o", 0644);
  std::snprintf(reinterpret_cast<char*>(h + 124), 12, "%011o", 6u);
  std::snprintf(reinterpret_cast<char*>(h + 136), 12, "%011o", 0u);
  h[156] = 'S';
  std::memcpy(h + 257, "ustar  \0", 8);
  std::snprintf(reinterpret_cast<char*>(h + 386), 12, "%011o", 0u);
  std::snprintf(reinterpret_cast<char*>(h + 398), 12, "%011o", 3u);
  h[482] = 1;
  std::snprintf(reinterpret_cast<char*>(h + 483), 12, "%011o", 9000u);
  tar_set_checksum(h);
  b.insert(b.end(), h, h + 512);
  uint8_t ext[512] = {};
  std::snprintf(reinterpret_cast<char*>(ext), 12, "%011o", 8000u);
  std::snprintf(reinterpret_cast<char*>(ext + 12), 12, "%011o", 3u);
  b.insert(b.end(), ext, ext + 512);
  std::string data = "abcdef";
  data.resize(512, '\0');
  b.insert(b.end(), data.begin(), data.end());
  b.resize(b.size() + 1024, 0);

  std::vector<TarBytes> out{a, b, tar_gzip(a.data(), a.size())};
  return out;
}

// Re-signs every block that carries a ustar magic, so mutated fields get
// past the checksum and into the deeper checks.
inline void repair_tar_stream(TarBytes& b, std::mt19937_64&) {
  for (size_t off = 0; off + 512 <= b.size(); off += 512) {
    if (std::memcmp(b.data() + off + 257, "ustar", 5) == 0) tar_set_checksum(b.data() + off);
  }
}

}  // namespace obd::fuzz
