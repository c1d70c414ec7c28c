// ext4_tool: a native driver for the ext4 code, used by tests and for
// debugging without Node.
//   ext4_tool mkfs RAW SIZE_MIB [SEED]        create RAW (sparse) and format it
//   ext4_tool apply RAW LAYER [--mkfs SIZE_MIB] apply a layer (path or "-")
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "ext4/apply.h"
#include "ext4/mkfs.h"
#include "io/file.h"

using namespace obd;

static int fail(const Status& s) {
  std::fprintf(stderr, "error: %s: %s\n", code_name(s.code()), s.message().c_str());
  return 1;
}

static Result<FilePtr> create_raw(const std::string& path, uint64_t mib) {
  OBD_ASSIGN_OR_RETURN(FilePtr f, open_local(path, OpenMode::kCreateTruncate));
  OBD_TRY(f->truncate(mib << 20));
  return f;
}

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: ext4_tool mkfs RAW SIZE_MIB [SEED] | apply RAW LAYER [--mkfs SIZE_MIB]\n");
    return 2;
  }
  std::string cmd = argv[1], raw = argv[2];
  if (cmd == "mkfs") {
    auto f = create_raw(raw, std::strtoull(argv[3], nullptr, 10));
    if (!f) return fail(f.status());
    ext4::MkfsOptions o;
    if (argc > 4) o.seed = argv[4];
    Status s = ext4::mkfs(*f, o);
    return s ? 0 : fail(s);
  }
  if (cmd == "apply") {
    std::string layer = argv[3];
    FilePtr dev;
    ext4::ApplyOptions o;
    if (argc > 5 && std::string(argv[4]) == "--mkfs") {
      auto f = create_raw(raw, std::strtoull(argv[5], nullptr, 10));
      if (!f) return fail(f.status());
      dev = *f;
      o.mkfs = true;
    } else {
      auto f = open_local(raw, OpenMode::kReadWrite);
      if (!f) return fail(f.status());
      dev = *f;
    }
    if (std::getenv("EXT4_TOOL_PROGRESS")) {
      o.on_progress = [](const ext4::ApplyProgress& p) {
        std::fprintf(stderr, "progress: %llu bytes %llu entries\n", (unsigned long long)p.input_bytes,
                     (unsigned long long)p.entries);
      };
    }
    auto r = ext4::apply_layer(dev, layer, o);
    if (!r) return fail(r.status());
    std::printf("entries=%llu tar_bytes=%llu input_bytes=%llu\n", (unsigned long long)r->entries,
                (unsigned long long)r->tar_bytes, (unsigned long long)r->input_bytes);
    return 0;
  }
  std::fprintf(stderr, "unknown command %s\n", cmd.c_str());
  return 2;
}
