#include "io/sink.h"

#include <memory>

namespace obd {

Status copy_to_sink(File& src, Sink& out) {
  constexpr size_t kChunk = 4 << 20;
  OBD_ASSIGN_OR_RETURN(uint64_t size, src.size());
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(kChunk);
  for (uint64_t off = 0; off < size;) {
    size_t want = size_t(std::min<uint64_t>(kChunk, size - off));
    OBD_TRY(src.read_exact(buf.get(), want, off, Code::kEIO, "source data (did the file shrink?)"));
    OBD_TRY(out.append(buf.get(), want));
    off += want;
  }
  return Status::ok();
}

}  // namespace obd
