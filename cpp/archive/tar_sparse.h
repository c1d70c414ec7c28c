// GNU sparse file maps: the old GNU header form, pax 0.1's comma list, pax
// 1.0's map at the head of the data, and the checks every map must pass.
// Internal to archive/.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "io/file.h"

namespace obd::archive {

// A map is read into memory before the data: cap it (16 MiB of extents).
constexpr size_t kMaxSparseSegments = size_t(1) << 20;

// Segments must go forward without overlapping, end within `realsize`, and
// their lengths must add up to the `stored` data bytes. "" when all hold.
std::string validate_sparse(const std::vector<Extent>& map, uint64_t realsize, uint64_t stored);

// Old GNU: up to `slots` (offset, numbytes) pairs of 12-byte numbers at `p`;
// an entry whose offset starts with NUL ends the list.
std::string parse_gnu_sparse_slots(const uint8_t* p, size_t slots, std::vector<Extent>* map);

// pax 0.1: GNU.sparse.map = "off,len,off,len,...".
std::string parse_sparse_map_01(std::string_view s, std::vector<Extent>* map);

// pax 1.0: decimal lines (count, then offset/length pairs) at the start of
// the data, fed one 512-byte block at a time.
class SparseMap10Parser {
 public:
  // Returns "" or an error; done() once the map is complete.
  std::string feed(const uint8_t* blk, size_t n);
  bool done() const { return have_count_ && map_.size() == count_ && !half_; }
  std::vector<Extent> take() { return std::move(map_); }

 private:
  std::string number(uint64_t v);
  std::vector<Extent> map_;
  uint64_t count_ = 0, pending_ = 0, digits_ = 0, cur_ = 0;
  bool have_count_ = false, half_ = false;
};

// The map as TarEntry publishes it: zero-length segments dropped; a file
// that is all holes keeps one {realsize, 0} so it still reads as sparse.
std::vector<Extent> public_sparse_map(const std::vector<Extent>& map, uint64_t realsize);

}  // namespace obd::archive
