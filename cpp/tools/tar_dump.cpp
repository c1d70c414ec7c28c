// tar_dump: prints each entry of a layer tar (plain, gzip or zstd; a path or
// "-" for stdin) as one JSON line, so tests can compare TarReader with GNU
// tar and Python's tarfile. Data is hashed (FNV-1a 64), not printed. A last
// line {"end":true,...} gives the stream totals. On error: the Status on
// stderr and exit 1.
//
//   tar_dump [--no-data] [--chunk N] [--via-file] PATH|-
//
// --via-file reads PATH through a File (pread) instead of a descriptor.
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "archive/byte_stream.h"
#include "archive/tar_reader.h"
#include "io/file.h"
#include "tools/json_out.h"

using namespace obd;

using obd::tools::hex;
using obd::tools::jstr;
using obd::tools::valid_utf8;

namespace {


// A string field, plus KEY_hex when it is not valid UTF-8.
std::string jfield(const char* key, const std::string& s) {
  std::string out = std::string("\"") + key + "\":" + jstr(s);
  if (!valid_utf8(s)) out += std::string(",\"") + key + "_hex\":\"" + hex(s) + "\"";
  return out;
}

int fail(const Status& s) {
  fprintf(stderr, "%s\n", s.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  bool read_data = true, via_file = false;
  size_t chunk = 64 * 1024;
  const char* path = nullptr;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--no-data")) read_data = false;
    else if (!strcmp(argv[i], "--chunk") && i + 1 < argc) chunk = std::max<size_t>(1, strtoull(argv[++i], nullptr, 10));
    else if (!strcmp(argv[i], "--via-file")) via_file = true;
    else path = argv[i];
  }
  if (!path) {
    fprintf(stderr, "usage: tar_dump [--no-data] [--chunk N] [--via-file] PATH|-\n");
    return 2;
  }
  Result<ByteStreamPtr> raw = Status(Code::kINTERNAL, "unset");
  if (via_file) {
    auto f = open_local(path, OpenMode::kRead);
    if (!f) return fail(f.status());
    raw = make_file_stream(f.value());
  } else {
    raw = open_path_stream(path);
  }
  if (!raw) return fail(raw.status());
  Compression comp;
  auto stream = make_decompressing_stream(std::move(raw.value()), &comp);
  if (!stream) return fail(stream.status());
  auto reader = TarReader::open(std::move(stream.value()));
  if (!reader) return fail(reader.status());
  TarReader& tr = **reader;
  std::vector<uint8_t> buf(chunk);
  uint64_t entries = 0;
  for (;;) {
    TarEntry e;
    auto more = tr.next(&e);
    if (!more) return fail(more.status());
    if (!*more) break;
    entries++;
    uint64_t count = 0, h = 0xcbf29ce484222325ull;
    if (read_data) {
      for (;;) {
        auto k = tr.read_data(buf.data(), buf.size());
        if (!k) return fail(k.status());
        if (*k == 0) break;
        for (size_t i = 0; i < *k; i++) h = (h ^ buf[i]) * 0x100000001b3ull;
        count += *k;
      }
    }
    std::string line = "{\"type\":\"" + std::string(tar_type_name(e.type)) + "\"," + jfield("path", e.path) + "," +
                       jfield("link", e.link);
    char nums[512];
    snprintf(nums, sizeof nums,
             ",\"mode\":%u,\"uid\":%u,\"gid\":%u,\"mtime_sec\":%lld,\"mtime_nsec\":%u,\"size\":%llu,"
             "\"devmajor\":%u,\"devminor\":%u,\"data_offset\":%llu",
             e.mode, e.uid, e.gid, (long long)e.mtime_sec, e.mtime_nsec, (unsigned long long)e.size, e.devmajor,
             e.devminor, (unsigned long long)e.data_offset);
    line += nums;
    line += ",\"xattrs\":[";
    for (size_t i = 0; i < e.xattrs.size(); i++) {
      line += (i ? ",[" : "[") + jstr(e.xattrs[i].first) + ",\"" + hex(e.xattrs[i].second) + "\"]";
    }
    line += "],\"sparse\":[";
    for (size_t i = 0; i < e.sparse.size(); i++) {
      line += (i ? ",[" : "[") + std::to_string(e.sparse[i].off) + "," + std::to_string(e.sparse[i].len) + "]";
    }
    line += "]";
    if (read_data) {
      char d[96];
      snprintf(d, sizeof d, ",\"data_bytes\":%llu,\"data_fnv\":\"%016llx\"", (unsigned long long)count,
               (unsigned long long)h);
      line += d;
    }
    line += "}\n";
    fwrite(line.data(), 1, line.size(), stdout);
  }
  printf("{\"end\":true,\"entries\":%llu,\"offset\":%llu,\"consumed\":%llu,\"compression\":\"%s\"}\n",
         (unsigned long long)entries, (unsigned long long)tr.offset(), (unsigned long long)tr.consumed(),
         compression_name(comp));
  return 0;
}
