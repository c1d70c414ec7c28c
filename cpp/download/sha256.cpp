#include "download/sha256.h"

#include <algorithm>
#include <vector>

#include "common/sha256.h"

namespace obd::download {

Result<std::string> sha256_digest(File& file, size_t chunk, const std::function<bool()>& keep_going) {
  OBD_ASSIGN_OR_RETURN(Sha256 hash, Sha256::start(file.name()));
  OBD_ASSIGN_OR_RETURN(uint64_t size, file.size());
  std::vector<uint8_t> buf(std::max<size_t>(chunk, 1));
  for (uint64_t off = 0; off < size;) {
    if (keep_going && !keep_going()) return Status(Code::kCLOSED, "sha256 of " + file.name() + ": stopped");
    size_t n = size_t(std::min<uint64_t>(buf.size(), size - off));
    OBD_TRY(file.read_exact(buf.data(), n, off, Code::kEIO, "data to hash"));
    hash.update(buf.data(), n);
    off += n;
  }
  return hash.finish();
}

}  // namespace obd::download
