#include "lsmt/search_tree.h"

#include <immintrin.h>

#include <bit>

namespace obd::lsmt {
namespace {

using Node = const uint64_t*;

// Each variant returns the number of keys <= x in one 8-key node; keys are
// sorted, so that is also the index of the child to descend to.
size_t count_scalar(Node k, uint64_t x) {
  size_t n = 0;
  for (size_t i = 0; i < SearchTree::kFanout; i++) n += k[i] <= x;
  return n;
}

#if defined(__x86_64__)
// No unsigned 64-bit compare before AVX-512: flip the sign bits, compare signed.
__attribute__((target("sse4.2"))) size_t count_sse42(Node k, uint64_t x) {
  const __m128i sign = _mm_set1_epi64x(INT64_MIN), v = _mm_xor_si128(_mm_set1_epi64x(int64_t(x)), sign);
  int gt = 0;
  for (size_t i = 0; i < SearchTree::kFanout; i += 2) {
    __m128i key = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(k + i)), sign);
    gt += __builtin_popcount(_mm_movemask_pd(_mm_castsi128_pd(_mm_cmpgt_epi64(key, v))));
  }
  return SearchTree::kFanout - size_t(gt);
}

__attribute__((target("avx2,popcnt"))) size_t count_avx2(Node k, uint64_t x) {
  const __m256i sign = _mm256_set1_epi64x(INT64_MIN), v = _mm256_xor_si256(_mm256_set1_epi64x(int64_t(x)), sign);
  int gt = 0;
  for (size_t i = 0; i < SearchTree::kFanout; i += 4) {
    __m256i key = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(k + i)), sign);
    gt += __builtin_popcount(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(key, v))));
  }
  return SearchTree::kFanout - size_t(gt);
}

__attribute__((target("avx512f,popcnt"))) size_t count_avx512(Node k, uint64_t x) {
  const __m512i v = _mm512_set1_epi64(int64_t(x));
  size_t le = 0;
  for (size_t i = 0; i < SearchTree::kFanout; i += 8) le += __builtin_popcount(_mm512_cmple_epu64_mask(_mm512_load_si512(k + i), v));
  return le;
}
#endif

// The descent, instantiated per variant so the compare inlines into the loop.
template <size_t (*Count)(Node, uint64_t)>
size_t descend(const uint64_t* nodes, const uint32_t* level_start, size_t levels, uint64_t x) {
  size_t node = 0;
  for (size_t l = 0; l < levels; l++) node = node * SearchTree::kFanout + Count(nodes + (level_start[l] + node) * SearchTree::kFanout, x);
  return node;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) size_t descend_sse42(const uint64_t* n, const uint32_t* s, size_t l, uint64_t x) {
  return descend<count_sse42>(n, s, l, x);
}
__attribute__((target("avx2,popcnt"))) size_t descend_avx2(const uint64_t* n, const uint32_t* s, size_t l, uint64_t x) {
  return descend<count_avx2>(n, s, l, x);
}
__attribute__((target("avx512f,popcnt"))) size_t descend_avx512(const uint64_t* n, const uint32_t* s, size_t l,
                                                                 uint64_t x) {
  return descend<count_avx512>(n, s, l, x);
}
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
    case SearchIsa::kSse42: return __builtin_cpu_supports("sse4.2");
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
SearchTree::SearchTree(std::span<const uint64_t> keys) : isa_(best_search_isa()) {
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
    level_start_.push_back(uint32_t(nodes_.size()));
    for (size_t i = 0; i < it->size(); i += kFanout) {
      Node n;
      for (size_t k = 0; k < kFanout; k++) n.k[k] = (*it)[i + k];
      nodes_.push_back(n);
    }
  }
}

size_t SearchTree::rank(uint64_t x, SearchIsa isa) const {
  const uint64_t* n = nodes_.data()->k;
  const uint32_t* s = level_start_.data();
  size_t l = level_start_.size();
#if defined(__x86_64__)
  switch (isa) {
    case SearchIsa::kAvx512: return descend_avx512(n, s, l, x);
    case SearchIsa::kAvx2: return descend_avx2(n, s, l, x);
    case SearchIsa::kSse42: return descend_sse42(n, s, l, x);
    default: break;
  }
#endif
  return descend<count_scalar>(n, s, l, x);
}

}  // namespace obd::lsmt
