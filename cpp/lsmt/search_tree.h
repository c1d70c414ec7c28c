// A static search tree over sorted u64 keys (the ends of an RoIndex's
// segment groups): nodes of 16 keys, two adjacent 64-byte cache lines,
// compared with SIMD. The instruction set is picked once at run time
// (AVX-512, AVX2, SSE4.2, or plain C++), so the build stays portable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace obd::lsmt {

enum class SearchIsa { kScalar, kSse42, kAvx2, kAvx512 };

const char* search_isa_name(SearchIsa isa);
bool search_isa_supported(SearchIsa isa);
// The fastest variant this CPU runs (chosen once, at first use).
SearchIsa best_search_isa();

class SearchTree {
 public:
  static constexpr size_t kFanout = 16;  // u64 keys a node: two cache lines, fetched together

  SearchTree() = default;
  // `keys` must be sorted ascending and all below UINT64_MAX (the padding).
  explicit SearchTree(std::span<const uint64_t> keys);

  bool empty() const { return nodes_.empty(); }
  // The number of keys <= x, given x < the last key, with the compares of
  // `isa` (tests force each one; RoIndex inlines rank_with instead).
  size_t rank(uint64_t x, SearchIsa isa) const;
  // rank() with one compare kernel of lsmt/search_kernels.h; instantiate it
  // only inside a function built for that kernel (OBD_SEARCH_FLAT_*).
  template <class Kernel>
  size_t rank_with(uint64_t x) const {
    const uint64_t* keys = nodes_.data()->k;
    size_t pos = 0;  // the compared node's first key, counted from its level's first
    for (size_t first : level_first_key_) pos = (pos + Kernel::keys_le(keys + first + pos, x)) * kFanout;
    return pos / kFanout;
  }

 private:
  struct alignas(128) Node {
    uint64_t k[kFanout];
  };
  std::vector<Node> nodes_;           // levels top first, each padded with UINT64_MAX
  std::vector<size_t> level_first_key_;  // where each level starts, in keys
};

}  // namespace obd::lsmt
