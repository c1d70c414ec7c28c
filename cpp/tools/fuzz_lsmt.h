// obd_fuzz target `lsmt`: parses the bytes as a layer blob (tar, ZFile, LSMT)
// and as an RW index file, then stacks and reads what parsed. Reads are
// bounded so an absurd virtual size cannot turn a mutant into a long run.
#pragma once
#include <algorithm>
#include <cstring>
#include <vector>

#include "image/stack.h"
#include "lsmt/ro_layer.h"
#include "lsmt/rw_layer.h"
#include "layer/blob.h"

inline int fuzz_lsmt(const uint8_t* data, size_t size) {
  using namespace obd;
  std::vector<uint8_t> bytes(data, data + size);
  FilePtr blob = make_memory_file("fuzz.lsmt", bytes);
  auto f = layer::open_blob(blob);
  if (f) {
    auto layer = lsmt::open_ro_layer(f.value().content);
    if (layer) {
      // Stack the layer twice to exercise the merge, then read mapped extents.
      auto img = StackImage::create({layer.value(), layer.value()}, nullptr, "fuzz");
      if (img) {
        std::vector<uint8_t> buf(64 << 10);
        size_t n = 0;
        for (const auto& s : (*img)->merged_index().segments()) {
          if (++n > 256) break;
          uint64_t len = std::min<uint64_t>(uint64_t(s.length) * lsmt::kSector, buf.size());
          (void)(*img)->pread(buf.data(), len, s.offset * lsmt::kSector);
        }
        (void)(*img)->pread(buf.data(), 4096, 0);
      }
    }
  }
  // The same bytes as the index file of an append-mode writable layer.
  lsmt::Record r;
  r.flags = lsmt::kFlagHeader | lsmt::kFlagData;
  r.virtual_size = 1 << 30;
  std::vector<uint8_t> hdr(lsmt::kHeaderSize + (1 << 20));
  lsmt::encode_record(r, hdr.data());
  auto rw = lsmt::RwLayer::open(make_memory_file("fuzz.data", hdr), make_memory_file("fuzz.index", bytes));
  if (rw) {
    auto segs = (*rw)->resolved();
    (void)segs;
  }
  return 0;
}
