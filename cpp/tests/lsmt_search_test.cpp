// The SIMD search tree under RoIndex::find: every instruction-set variant
// this CPU runs (forced one by one) must give exactly what a plain
// std::upper_bound over the segment ends gives, on random indexes and
// probes, including the edges of every segment, empty and 1-entry indexes.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

#include "lsmt/index.h"
#include "lsmt/search_tree.h"

using namespace obd::lsmt;

namespace {

constexpr SearchIsa kAllIsas[] = {SearchIsa::kScalar, SearchIsa::kSse42, SearchIsa::kAvx2, SearchIsa::kAvx512};

size_t reference_find(const std::vector<Segment>& segs, uint64_t lba) {
  return size_t(std::upper_bound(segs.begin(), segs.end(), lba, [](uint64_t v, const Segment& s) { return v < s.end(); }) -
                segs.begin());
}

// Sorted, non-overlapping segments; gaps and lengths drawn from wide ranges
// so that keys span small and huge (near 2^63 and beyond) LBAs.
std::vector<Segment> random_segments(std::mt19937_64& rng, size_t n, uint64_t start, uint64_t gap_max) {
  std::vector<Segment> v;
  uint64_t pos = start;
  for (size_t i = 0; i < n; i++) {
    uint32_t len = 1 + uint32_t(rng() % 2048);
    v.push_back({pos, len, 8 + i, rng() % 7 == 0, 0});
    pos += len + (gap_max ? rng() % (gap_max + 1) : 0);
  }
  return v;
}

TEST(LsmtSearch, ReportsSupportedVariants) {
  EXPECT_TRUE(search_isa_supported(SearchIsa::kScalar));
  EXPECT_TRUE(search_isa_supported(best_search_isa()));
  for (SearchIsa isa : kAllIsas) std::printf("%s: %s\n", search_isa_name(isa), search_isa_supported(isa) ? "yes" : "no");
}

TEST(LsmtSearch, EveryVariantMatchesUpperBound) {
  std::mt19937_64 rng(2026);
  int failures = 0;
  for (size_t n : {0, 1, 2, 7, 8, 9, 31, 32, 33, 63, 64, 65, 511, 512, 513, 4095, 4096, 4097, 100000}) {
    for (uint64_t start : {uint64_t(0), uint64_t(1) << 40, (uint64_t(1) << 63) - (uint64_t(1) << 32)}) {
      auto segs = random_segments(rng, n, start, rng() % 2 ? 0 : 5000);
      RoIndex idx(segs);
      std::vector<uint64_t> probes = {0, start, UINT64_MAX, UINT64_MAX - 1};
      for (const Segment& s : segs) {
        if (rng() % 8 && n > 600) continue;  // every edge of small indexes, a sample of big ones
        for (uint64_t d : {s.offset - 1, s.offset, s.offset + 1, s.end() - 1, s.end(), s.end() + 1}) probes.push_back(d);
      }
      uint64_t hi = segs.empty() ? 100 : segs.back().end() + 10;
      for (int t = 0; t < 2000; t++) probes.push_back(start + rng() % (hi - start + 1));
      for (uint64_t lba : probes) {
        size_t want = reference_find(segs, lba);
        if (idx.find(lba) != want && ++failures < 20)
          ADD_FAILURE() << "find(" << lba << ") in " << n << " entries: got " << idx.find(lba) << ", want " << want;
        for (SearchIsa isa : kAllIsas) {
          if (!search_isa_supported(isa)) continue;
          size_t got = idx.find(lba, isa);
          if (got != want && ++failures < 20)
            ADD_FAILURE() << search_isa_name(isa) << " find(" << lba << ") in " << n << " entries: got " << got
                          << ", want " << want;
        }
      }
    }
  }
  EXPECT_EQ(failures, 0);
}

// The tree alone, on distinct keys with random gaps: rank(x) is the
// number of keys <= x for every x below the last key.
TEST(LsmtSearch, TreeRankMatchesCount) {
  std::mt19937_64 rng(7);
  for (size_t n : {1, 8, 9, 64, 65, 4097, 33000}) {
    std::vector<uint64_t> keys(n);
    uint64_t k = rng() % 3;
    for (auto& x : keys) x = k += 1 + rng() % (rng() % 2 ? 3 : uint64_t(1) << 50);
    SearchTree tree(keys);
    for (int t = 0; t < 3000; t++) {
      uint64_t x = t % 3 == 0 ? keys[rng() % n] - (t % 2) : rng() % keys.back();
      if (x >= keys.back()) continue;
      size_t want = size_t(std::upper_bound(keys.begin(), keys.end(), x) - keys.begin());
      for (SearchIsa isa : kAllIsas) {
        if (search_isa_supported(isa)) {
          ASSERT_EQ(tree.rank(x, isa), want) << search_isa_name(isa) << " x=" << x;
        }
      }
    }
  }
}

}  // namespace
