#include "archive/tar_sparse.h"

#include "tar/pax.h"
#include "tar/header.h"

namespace obd::archive {

using namespace tar;  // the header codec

static std::string seg(size_t i, const Extent& e) {
  return "sparse segment " + std::to_string(i) + " {" + std::to_string(e.off) + ", " + std::to_string(e.len) + "}";
}

std::string validate_sparse(const std::vector<Extent>& map, uint64_t realsize, uint64_t stored) {
  if (map.size() > kMaxSparseSegments) return "sparse map has more than " + std::to_string(kMaxSparseSegments) + " segments";
  uint64_t end = 0, total = 0;
  for (size_t i = 0; i < map.size(); i++) {
    const Extent& e = map[i];
    if (e.off < end) return seg(i, e) + " overlaps or goes back before offset " + std::to_string(end);
    if (e.len > INT64_MAX || e.off > uint64_t(INT64_MAX) - e.len) return seg(i, e) + " overflows";
    if (e.off + e.len > realsize) return seg(i, e) + " ends past the real size " + std::to_string(realsize);
    end = e.off + e.len;
    total += e.len;
  }
  if (total != stored) {
    return "sparse map covers " + std::to_string(total) + " bytes but the entry stores " + std::to_string(stored);
  }
  return "";
}

std::string parse_gnu_sparse_slots(const uint8_t* p, size_t slots, std::vector<Extent>* map) {
  for (size_t i = 0; i < slots; i++, p += kGnuSparseEntryLen) {
    if (p[0] == 0) break;
    int64_t off, len;
    if (!parse_number(p, 12, &off) || !parse_number(p + 12, 12, &len) || off < 0 || len < 0) {
      return "bad number in old GNU sparse entry " + std::to_string(map->size());
    }
    if (map->size() >= kMaxSparseSegments) return "sparse map has too many segments";
    map->push_back({uint64_t(off), uint64_t(len)});
  }
  return "";
}

std::string parse_sparse_map_01(std::string_view s, std::vector<Extent>* map) {
  if (s.empty()) return "";
  std::vector<uint64_t> nums;
  size_t pos = 0;
  for (;;) {
    size_t comma = s.find(',', pos);
    uint64_t v;
    if (!parse_decimal(s.substr(pos, comma == std::string_view::npos ? s.npos : comma - pos), INT64_MAX, &v)) {
      return "GNU.sparse.map has a bad number at byte " + std::to_string(pos);
    }
    nums.push_back(v);
    if (nums.size() > 2 * kMaxSparseSegments) return "GNU.sparse.map has too many segments";
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  if (nums.size() % 2) return "GNU.sparse.map has an odd count of numbers";
  for (size_t i = 0; i < nums.size(); i += 2) map->push_back({nums[i], nums[i + 1]});
  return "";
}

std::string SparseMap10Parser::number(uint64_t v) {
  if (!have_count_) {
    if (v > kMaxSparseSegments) return "sparse 1.0 map claims " + std::to_string(v) + " segments";
    have_count_ = true;
    count_ = v;  // no reserve: the count is untrusted, the map grows as it is read
  } else if (!half_) {
    pending_ = v;
    half_ = true;
  } else {
    map_.push_back({pending_, v});
    half_ = false;
  }
  return "";
}

std::string SparseMap10Parser::feed(const uint8_t* blk, size_t n) {
  for (size_t i = 0; i < n && !done(); i++) {
    uint8_t c = blk[i];
    if (c == '\n') {
      if (digits_ == 0) return "sparse 1.0 map has an empty line";
      std::string err = number(cur_);
      if (!err.empty()) return err;
      cur_ = digits_ = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits_ > 19) return "sparse 1.0 map has a number too long";
      cur_ = cur_ * 10 + (c - '0');
    } else {
      return "sparse 1.0 map has a bad byte";
    }
  }
  return "";
}

std::vector<Extent> public_sparse_map(const std::vector<Extent>& map, uint64_t realsize) {
  std::vector<Extent> out;
  for (const Extent& e : map)
    if (e.len) out.push_back(e);
  if (out.empty()) out.push_back({realsize, 0});
  return out;
}

}  // namespace obd::archive
