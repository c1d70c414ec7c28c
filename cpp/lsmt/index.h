// In-memory LSMT indexes. RoIndex: a sorted, non-overlapping array (committed
// layers, merged stacks) with a search tree for lookups. RwIndex: an interval
// map where a later write overrides earlier ones (writable layers).
#pragma once
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "lsmt/format.h"
#include "lsmt/search_tree.h"

namespace obd::lsmt {

class RoIndex {
 public:
  RoIndex() = default;
  // `segs` must be sorted and non-overlapping (validate_ro_index checks it).
  explicit RoIndex(std::vector<Segment> segs);

  const std::vector<Segment>& segments() const { return segs_; }
  size_t size() const { return segs_.size(); }
  // Index of the first segment whose end is beyond `lba` (size() if none).
  size_t find(uint64_t lba) const { return find_(*this, lba); }
  // The same with the compares in a given instruction set (tests force each
  // one the CPU supports).
  size_t find(uint64_t lba, SearchIsa isa) const { return finder(isa)(*this, lba); }
  // Calls fn(piece) for each mapped piece of [lba, lba+n), trimmed to it, in order.
  template <typename F>
  void lookup(uint64_t lba, uint64_t n, F&& fn) const {
    uint64_t end = lba + n;
    for (const Segment *p = segs_.data() + find(lba), *last = std::to_address(segs_.end()); p < last && p->offset < end;
         p++) {
      Segment s = *p;
      if (s.offset < lba) s.trim_front(lba - s.offset);
      if (s.end() > end) s.trim_back_to(end);
      fn(s);
    }
  }

 private:
  // One function a lookup, built for one instruction set (index.cpp).
  using FindFn = size_t (*)(const RoIndex&, uint64_t);
  struct Finders;
  static FindFn finder(SearchIsa isa);
  template <class Kernel>
  size_t find_with(uint64_t lba) const;
  void build_search_tree();

  std::vector<Segment> segs_;
  // Static B-tree over the end LBA of each group of kGroup segments: two
  // adjacent cache lines a level, compared with SIMD, instead of one cache
  // miss a comparison as in binary search; then a branch-free count over
  // one group.
  static constexpr size_t kGroup = 16;
  SearchTree tree_;
  FindFn find_ = finder(best_search_isa());
};

// Checks a committed index against the layout rules (§2.2) and drops padding
// entries; zeroes tags unless `keep_tags` (TurboOCI files use them).
Result<std::vector<Segment>> validate_ro_index(std::vector<Segment> raw, uint64_t data_end_sector, bool keep_tags,
                                               const std::string& what);

class RwIndex {
 public:
  // Inserts `s`, trimming or splitting whatever it overlaps.
  void insert(Segment s);
  // Removes [lba, lba+n) from the map (sparse layers: a punched hole).
  void erase(uint64_t lba, uint64_t n);
  template <typename F>
  void lookup(uint64_t lba, uint64_t n, F&& fn) const {
    uint64_t end = lba + n;
    auto it = map_.upper_bound(lba);
    if (it != map_.begin()) {
      auto prev = std::prev(it);
      if (prev->second.end() > lba) it = prev;
    }
    for (; it != map_.end() && it->second.offset < end; ++it) {
      Segment s = it->second;
      if (s.offset < lba) s.trim_front(lba - s.offset);
      if (s.end() > end) s.trim_back_to(end);
      fn(s);
    }
  }
  size_t size() const { return map_.size(); }
  std::vector<Segment> to_vector() const;

 private:
  std::map<uint64_t, Segment> map_;  // keyed by offset
};

// Merges read-only indexes given top layer first: for every LBA the top-most
// layer with an entry wins (a zeroed entry masks lower data). Each result
// entry's tag is its layer's position from the top.
Result<RoIndex> merge_indexes(std::span<const RoIndex* const> top_first);

}  // namespace obd::lsmt
