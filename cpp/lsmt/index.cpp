#include "lsmt/index.h"

#include <algorithm>
#include <memory>

#include "lsmt/search_kernels.h"

namespace obd::lsmt {

RoIndex::RoIndex(std::vector<Segment> segs) : segs_(std::move(segs)) { build_search_tree(); }

// Groups of 16 segments keep the tree over their ends at half a byte an
// entry (a 1M-entry merged index: 0.5 MB), so it stays cache resident and
// a lookup misses the cache about once, on the group it lands in.
void RoIndex::build_search_tree() {
  tree_ = SearchTree();
  if (segs_.size() < 4 * kGroup) return;  // binary search is as fast
  std::vector<uint64_t> ends;
  ends.reserve(segs_.size() / kGroup + 1);
  for (size_t g = 0; g < segs_.size(); g += kGroup) ends.push_back(segs_[std::min(g + kGroup, segs_.size()) - 1].end());
  tree_ = SearchTree(ends);
}

template <class Kernel>
size_t RoIndex::find_with(uint64_t lba) const {
  // Pointers, not size(): a division by 24 a lookup is measurable here.
  const Segment *segs = segs_.data(), *last = std::to_address(segs_.end());
  if (segs == last || lba >= last[-1].end()) return segs_.size();
  if (tree_.empty())
    return size_t(std::upper_bound(segs, last, lba, [](uint64_t v, const Segment& s) { return v < s.end(); }) - segs);
  // lba is below the last end, so the tree names a real group: the first
  // whose last end is beyond lba. The answer is in it.
  static_assert(kGroup == search_kernels::kWidth);
  size_t base = tree_.rank_with<Kernel>(lba) * kGroup;
  const Segment* g = segs + base;
  if (last - g < ptrdiff_t(kGroup)) {  // the last group may be short
    while (g->end() <= lba) g++;
    return size_t(g - segs);
  }
  return base + Kernel::ends_le(g, lba);
}

struct RoIndex::Finders {
  OBD_SEARCH_FLAT_SCALAR static size_t scalar(const RoIndex& i, uint64_t lba) {
    return i.find_with<search_kernels::Scalar>(lba);
  }
#if defined(__x86_64__)
  OBD_SEARCH_FLAT_SSE42 static size_t sse42(const RoIndex& i, uint64_t lba) {
    return i.find_with<search_kernels::Sse42>(lba);
  }
  OBD_SEARCH_FLAT_AVX2 static size_t avx2(const RoIndex& i, uint64_t lba) {
    return i.find_with<search_kernels::Avx2>(lba);
  }
  OBD_SEARCH_FLAT_AVX512 static size_t avx512(const RoIndex& i, uint64_t lba) {
    return i.find_with<search_kernels::Avx512>(lba);
  }
#endif
};

RoIndex::FindFn RoIndex::finder(SearchIsa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case SearchIsa::kAvx512: return &Finders::avx512;
    case SearchIsa::kAvx2: return &Finders::avx2;
    case SearchIsa::kSse42: return &Finders::sse42;
    default: break;
  }
#endif
  return &Finders::scalar;
}

Result<std::vector<Segment>> validate_ro_index(std::vector<Segment> raw, uint64_t data_end_sector, bool keep_tags,
                                               const std::string& what) {
  std::vector<Segment> out;
  out.reserve(raw.size());
  for (size_t i = 0; i < raw.size(); i++) {
    Segment s = raw[i];
    if (s.is_invalid()) continue;
    if (!keep_tags) s.tag = 0;
    auto bad = [&](const std::string& why) {
      return Status(Code::kLSMT_BAD_INDEX, what + ": index entry " + std::to_string(i) + " (offset " +
                                               std::to_string(s.offset) + ", length " + std::to_string(s.length) +
                                               ", moffset " + std::to_string(s.moffset) + "): " + why);
    };
    if (s.length == 0) return bad("length is 0");
    if (!out.empty() && out.back().end() > s.offset) return bad("overlaps or precedes the previous entry");
    if (!keep_tags) {  // TurboOCI entries point into another file: no range check
      if (s.moffset < kHeaderSize / kSector) return bad("data starts inside the header");
      if (s.zeroed ? s.moffset > data_end_sector : s.moffset + s.length > data_end_sector)
        return bad("data lies beyond the index offset");
    }
    out.push_back(s);
  }
  return out;
}

void RwIndex::insert(Segment s) {
  erase(s.offset, s.length);
  map_.emplace(s.offset, s);
}

void RwIndex::erase(uint64_t lba, uint64_t n) {
  uint64_t end = lba + n;
  auto it = map_.lower_bound(lba);
  if (it != map_.begin()) {
    auto prev = std::prev(it);
    Segment p = prev->second;
    if (p.end() > lba) {
      // The previous segment covers lba: keep its head, maybe its tail.
      prev->second.trim_back_to(lba);
      if (p.end() > end) {
        Segment tail = p;
        tail.trim_front(end - p.offset);
        map_.emplace(tail.offset, tail);
        return;
      }
    }
  }
  while (it != map_.end() && it->second.offset < end) {
    Segment c = it->second;
    it = map_.erase(it);
    if (c.end() > end) {
      c.trim_front(end - c.offset);
      map_.emplace_hint(it, c.offset, c);
      break;
    }
  }
}

std::vector<Segment> RwIndex::to_vector() const {
  std::vector<Segment> v;
  v.reserve(map_.size());
  for (auto& [k, s] : map_) v.push_back(s);
  return v;
}

Result<RoIndex> merge_indexes(std::span<const RoIndex* const> top_first) {
  if (top_first.size() > kMaxStackLayers)
    return Status(Code::kLSMT_TOO_MANY_LAYERS, "a stack holds at most 255 read-only layers, got " +
                                                   std::to_string(top_first.size()));
  std::vector<Segment> acc;
  for (size_t layer = 0; layer < top_first.size(); layer++) {
    const auto& lower = top_first[layer]->segments();
    std::vector<Segment> next;
    next.reserve(acc.size() + lower.size());
    size_t j = 0;
    uint64_t gap_start = 0;
    // Fill the gap [gap_start, gap_end) with the lower layer's entries.
    auto fill = [&](uint64_t gap_end) {
      while (j < lower.size() && lower[j].end() <= gap_start) j++;
      for (size_t k = j; k < lower.size() && lower[k].offset < gap_end; k++) {
        Segment s = lower[k];
        s.tag = uint8_t(layer);
        if (s.offset < gap_start) s.trim_front(gap_start - s.offset);
        if (s.end() > gap_end) s.trim_back_to(gap_end);
        next.push_back(s);
      }
    };
    for (const Segment& s : acc) {
      if (s.offset > gap_start) fill(s.offset);
      next.push_back(s);
      gap_start = s.end();
    }
    fill(UINT64_MAX);
    if (next.size() > kMaxRwIndexSize)
      return Status(Code::kLSMT_INDEX_TOO_LARGE, "merged index would have " + std::to_string(next.size()) +
                                                     " entries (limit 128000000)");
    acc = std::move(next);
  }
  return RoIndex(std::move(acc));
}

}  // namespace obd::lsmt
