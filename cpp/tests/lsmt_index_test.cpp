// Brute-force checks of the in-memory indexes: RoIndex::find against a
// linear scan for many sizes (the search tree starts at 64 entries), RwIndex
// against a per-sector model, merge_indexes against a per-sector top-wins
// model, and the commit's index size limit.
#include <gtest/gtest.h>

#include <cstdio>
#include <random>
#include <vector>

#include "lsmt/commit.h"
#include "lsmt/index.h"

using namespace obd::lsmt;

namespace {

// Stops a brute-force loop after a few failures instead of printing thousands.
#define EXPECT(cond, ...)                                              \
  do {                                                                 \
    if (!(cond)) {                                                     \
      char msg[256];                                                   \
      std::snprintf(msg, sizeof msg, __VA_ARGS__);                     \
      ADD_FAILURE() << msg;                                            \
      if (++failures > 20) FAIL() << "stopping after 20 failures";     \
    }                                                                  \
  } while (0)

std::vector<Segment> random_sorted(std::mt19937_64& rng, size_t n, uint64_t gap_max, uint32_t len_max) {
  std::vector<Segment> v;
  uint64_t pos = rng() % 100;
  for (size_t i = 0; i < n; i++) {
    uint32_t len = 1 + uint32_t(rng() % len_max);
    bool z = rng() % 5 == 0;
    v.push_back({pos, len, 8 + pos * 2, z, 0});
    pos += len + rng() % (gap_max + 1);
  }
  return v;
}

TEST(LsmtIndex, RoIndexFindMatchesLinearScan) {
  std::mt19937_64 rng(12345);
  int failures = 0;
  for (size_t n : {0, 1, 2, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 4095, 4096, 4097, 70000}) {
    auto segs = random_sorted(rng, n, rng() % 2 ? 0 : 50, 40);
    RoIndex idx(segs);
    uint64_t hi = segs.empty() ? 100 : segs.back().end() + 10;
    for (int t = 0; t < 3000; t++) {
      uint64_t lba = rng() % hi;
      size_t want = 0;
      while (want < segs.size() && segs[want].end() <= lba) want++;
      size_t got = idx.find(lba);
      EXPECT(got == want, "find(%llu) in %zu entries: got %zu, want %zu", (unsigned long long)lba, n, got, want);
    }
  }
}

// Per-sector model value: 0 = unmapped, else (moffset+1) or a zeroed marker.
uint64_t model_of(const Segment& s, uint64_t lba) { return s.zeroed ? 1ull << 62 : s.moffset + (lba - s.offset) + 1; }

TEST(LsmtIndex, RwIndexMatchesSectorModel) {
  std::mt19937_64 rng(12346);
  int failures = 0;
  const uint64_t space = 3000;
  for (int round = 0; round < 200; round++) {
    RwIndex idx;
    std::vector<uint64_t> model(space, 0);
    for (int op = 0; op < 60; op++) {
      uint64_t off = rng() % (space - 100);
      uint32_t len = 1 + uint32_t(rng() % 90);
      if (rng() % 6 == 0) {
        idx.erase(off, len);
        for (uint64_t x = off; x < off + len; x++) model[x] = 0;
        continue;
      }
      Segment s{off, len, 1000 + rng() % 100000, rng() % 4 == 0, 0};
      idx.insert(s);
      for (uint64_t x = off; x < off + len; x++) model[x] = model_of(s, x);
    }
    std::vector<uint64_t> got(space, 0);
    uint64_t prev_end = 0;
    for (const Segment& s : idx.to_vector()) {
      EXPECT(s.offset >= prev_end && s.length > 0, "rw index unsorted or empty entry at %llu", (unsigned long long)s.offset);
      prev_end = s.end();
      for (uint64_t x = s.offset; x < s.end(); x++) got[x] = model_of(s, x);
    }
    for (uint64_t x = 0; x < space; x++) EXPECT(got[x] == model[x], "rw sector %llu differs", (unsigned long long)x);
    // lookup trims to the asked range
    uint64_t a = rng() % space, b = a + rng() % 200;
    idx.lookup(a, b - a, [&](const Segment& s) { EXPECT(s.offset >= a && s.end() <= b, "lookup piece outside range"); });
  }
}

TEST(LsmtIndex, MergeMatchesTopWinsModel) {
  std::mt19937_64 rng(12347);
  int failures = 0;
  for (int round = 0; round < 50; round++) {
    size_t layers = 1 + rng() % 8;
    std::vector<RoIndex> idx;
    for (size_t l = 0; l < layers; l++) idx.emplace_back(random_sorted(rng, 1 + rng() % 300, rng() % 40, 30));
    std::vector<const RoIndex*> top_first;
    for (auto& i : idx) top_first.push_back(&i);  // idx[0] is the top
    auto merged = merge_indexes(top_first);
    EXPECT(merged.is_ok(), "merge failed");
    uint64_t space = 0;
    for (auto& i : idx) space = std::max(space, i.segments().back().end());
    for (uint64_t x = 0; x < space; x += 1 + rng() % 3) {
      uint64_t want = 0;
      int want_tag = -1;
      for (size_t l = 0; l < layers && want_tag < 0; l++) {
        idx[l].lookup(x, 1, [&](const Segment& s) {
          want = model_of(s, x);
          want_tag = int(l);
        });
      }
      uint64_t got = 0;
      int got_tag = -1;
      merged->lookup(x, 1, [&](const Segment& s) {
        got = model_of(s, x);
        got_tag = s.tag;
      });
      EXPECT(got == want && got_tag == want_tag, "merge sector %llu: got %llu/%d want %llu/%d",
             (unsigned long long)x, (unsigned long long)got, got_tag, (unsigned long long)want, want_tag);
    }
  }
}

// Commit refuses to write an index readers would reject (> 1,000,000 entries).
class NullSink final : public obd::Sink {
 public:
  obd::Status append(const void*, size_t) override { return obd::Status::ok(); }
};

TEST(LsmtCommit, RefusesIndexReadersWouldReject) {
  int failures = 0;
  std::vector<Segment> segs;
  for (uint64_t i = 0; i < 1000001; i++) segs.push_back({2 * i, 1, 8 + i, false, 0});  // gaps: nothing merges
  NullSink sink;
  auto zeros = [](const Segment&, void*) { return obd::Status::ok(); };
  Record src;
  src.virtual_size = uint64_t(4) << 30;
  obd::Status s = commit_segments(segs, zeros, src, {}, sink);
  EXPECT(s.code() == obd::Code::kLSMT_INDEX_TOO_LARGE, "commit of 1000001 entries: %s", s.to_string().c_str());
  segs.resize(999000);
  s = commit_segments(segs, zeros, src, {}, sink);
  EXPECT(s.is_ok(), "commit of 999000 entries: %s", s.to_string().c_str());
}

}  // namespace
