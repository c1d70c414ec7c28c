#include "lsmt/search_tree.h"

#include "lsmt/search_kernels.h"

namespace obd::lsmt {
namespace {

namespace sk = search_kernels;
static_assert(SearchTree::kFanout == sk::kWidth);

OBD_SEARCH_FLAT_SCALAR size_t rank_scalar(const SearchTree& t, uint64_t x) { return t.rank_with<sk::Scalar>(x); }
#if defined(__x86_64__)
OBD_SEARCH_FLAT_SSE42 size_t rank_sse42(const SearchTree& t, uint64_t x) { return t.rank_with<sk::Sse42>(x); }
OBD_SEARCH_FLAT_AVX2 size_t rank_avx2(const SearchTree& t, uint64_t x) { return t.rank_with<sk::Avx2>(x); }
OBD_SEARCH_FLAT_AVX512 size_t rank_avx512(const SearchTree& t, uint64_t x) { return t.rank_with<sk::Avx512>(x); }
#endif

}  // namespace

const char* search_isa_name(SearchIsa isa) {
  switch (isa) {
    case SearchIsa::kAvx512: return "avx512";
    case SearchIsa::kAvx2: return "avx2";
    case SearchIsa::kSse42: return "sse4.2";
    default: return "scalar";
  }
}

bool search_isa_supported(SearchIsa isa) {
#if defined(__x86_64__)
  switch (isa) {
    case SearchIsa::kAvx512: return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("popcnt");
    case SearchIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
    case SearchIsa::kSse42: return __builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("popcnt");
    default: return true;
  }
#else
  return isa == SearchIsa::kScalar;
#endif
}

SearchIsa best_search_isa() {
  static const SearchIsa best = [] {
    for (SearchIsa isa : {SearchIsa::kAvx512, SearchIsa::kAvx2, SearchIsa::kSse42})
      if (search_isa_supported(isa)) return isa;
    return SearchIsa::kScalar;
  }();
  return best;
}

// Layout: the bottom level holds the keys, padded with UINT64_MAX to whole
// nodes; each level above holds the last key of every node below, until one
// node is left. Levels are stored top first.
SearchTree::SearchTree(std::span<const uint64_t> keys) {
  if (keys.empty()) return;
  std::vector<std::vector<uint64_t>> levels;
  std::vector<uint64_t> level(keys.begin(), keys.end());
  while (true) {
    level.resize((level.size() + kFanout - 1) / kFanout * kFanout, UINT64_MAX);
    levels.push_back(level);
    if (level.size() == kFanout) break;
    std::vector<uint64_t> up;
    for (size_t i = kFanout - 1; i < level.size(); i += kFanout) up.push_back(level[i]);
    level = std::move(up);
  }
  for (auto it = levels.rbegin(); it != levels.rend(); ++it) {
    level_first_key_.push_back(nodes_.size() * kFanout);
    for (size_t i = 0; i < it->size(); i += kFanout) {
      Node n;
      for (size_t k = 0; k < kFanout; k++) n.k[k] = (*it)[i + k];
      nodes_.push_back(n);
    }
  }
}

size_t SearchTree::rank(uint64_t x, SearchIsa isa) const {
#if defined(__x86_64__)
  switch (isa) {
    case SearchIsa::kAvx512: return rank_avx512(*this, x);
    case SearchIsa::kAvx2: return rank_avx2(*this, x);
    case SearchIsa::kSse42: return rank_sse42(*this, x);
    default: break;
  }
#endif
  return rank_scalar(*this, x);
}

}  // namespace obd::lsmt
