#include "lsmt/index.h"

#include <algorithm>
#include <cstddef>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace obd::lsmt {
namespace {

// The number of segments in a full group of 16 whose end is <= lba, with
// no branch on the data: the group's loads issue together, and a lookup that
// ends a misprediction later does not discard the next one's work.
size_t count_ends_scalar(const Segment* g, uint64_t lba) {
  size_t n = 0;
  for (size_t k = 0; k < 16; k++) n += g[k].end() <= lba;
  return n;
}

#if defined(__x86_64__)
// Six vector loads instead of 32 scalar ones: a lookup then holds fewer
// load slots, so more lookups overlap their cache misses.
static_assert(sizeof(Segment) == 24 && offsetof(Segment, offset) == 0 && offsetof(Segment, length) == 16);
__attribute__((target("avx512f,popcnt"))) size_t count_ends_avx512(const Segment* g, uint64_t lba) {
  // 8 segments are 3 vectors of 8 qwords: offsets are qwords 0,3,..,21 and
  // lengths the low halves of qwords 2,5,..,23. Each pair of permutes picks
  // 6 lanes from the first two vectors, then the rest from the third.
  const __m512i off_ab = _mm512_setr_epi64(0, 3, 6, 9, 12, 15, 0, 0);
  const __m512i off_c = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 8 + 2, 8 + 5);
  const __m512i len_ab = _mm512_setr_epi64(2, 5, 8, 11, 14, 0, 0, 0);
  const __m512i len_c = _mm512_setr_epi64(0, 1, 2, 3, 4, 8 + 1, 8 + 4, 8 + 7);
  const __m512i x = _mm512_set1_epi64(int64_t(lba)), low32 = _mm512_set1_epi64(0xffffffff);
  size_t n = 0;
  for (int half = 0; half < 2; half++) {
    const uint64_t* q = reinterpret_cast<const uint64_t*>(g + 8 * half);
    __m512i a = _mm512_loadu_si512(q), b = _mm512_loadu_si512(q + 8), c = _mm512_loadu_si512(q + 16);
    __m512i off = _mm512_permutex2var_epi64(_mm512_permutex2var_epi64(a, off_ab, b), off_c, c);
    __m512i len = _mm512_and_si512(_mm512_permutex2var_epi64(_mm512_permutex2var_epi64(a, len_ab, b), len_c, c), low32);
    n += size_t(__builtin_popcount(_mm512_cmple_epu64_mask(_mm512_add_epi64(off, len), x)));
  }
  return n;
}
#endif

}  // namespace

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

size_t RoIndex::find(uint64_t lba) const { return find(lba, tree_.isa()); }

size_t RoIndex::find(uint64_t lba, SearchIsa isa) const {
  if (segs_.empty() || lba >= segs_.back().end()) return segs_.size();
  if (tree_.empty()) {
    auto it = std::upper_bound(segs_.begin(), segs_.end(), lba,
                               [](uint64_t v, const Segment& s) { return v < s.end(); });
    return size_t(it - segs_.begin());
  }
  // lba is below the last end, so the tree names a real group: the first
  // whose last end is beyond lba. The answer is in it.
  static_assert(kGroup == 16, "the group counts below read 16 segments");
  size_t base = tree_.rank(lba, isa) * kGroup;
  const Segment* g = segs_.data() + base;
  if (base + kGroup > segs_.size()) {  // the last group may be short
    while (g->end() <= lba) g++;
    return size_t(g - segs_.data());
  }
#if defined(__x86_64__)
  if (isa == SearchIsa::kAvx512) return base + count_ends_avx512(g, lba);
#endif
  return base + count_ends_scalar(g, lba);
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
