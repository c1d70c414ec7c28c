// Racing writers on a writable upper (append and sparse): 8 threads write
// 4 KiB-aligned blocks (and discard some) while 2 threads read. An append
// read never sees a block before its data landed, and a reopen resolves
// every raced LBA to the same write as the open image did.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "image/image.h"
#include "lsmt/rw_layer.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr uint64_t kBlocks = 64;

// Every 4 KiB block of a write carries (writer, seq, block) in each of its
// 8-byte words, so a reader can tell a whole block from a torn or early one.
void stamp(uint8_t* p, uint64_t writer, uint64_t seq, uint64_t block) {
  uint64_t v = writer << 56 | seq << 20 | block;
  for (size_t k = 0; k < 4096; k += 8) std::memcpy(p + k, &v, 8);
}

// A block is whole if it is all zeros (never written or discarded) or one
// stamp for this block throughout.
bool whole(const uint8_t* p, uint64_t block) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  if (v == 0) {
    for (size_t k = 0; k < 4096; k++)
      if (p[k]) return false;
    return true;
  }
  if ((v & 0xfffff) != block) return false;
  for (size_t k = 8; k < 4096; k += 8)
    if (std::memcmp(p + k, &v, 8) != 0) return false;
  return true;
}

// The first error any thread met.
class FirstError {
 public:
  void note(const Status& s, const char* what) {
    if (s.is_ok()) return;
    std::lock_guard lock(mu_);
    if (msg_.empty()) msg_ = std::string(what) + ": " + s.to_string();
    failed = true;
  }
  std::atomic<bool> failed{false};
  std::string message() {
    std::lock_guard lock(mu_);
    return msg_;
  }

 private:
  std::mutex mu_;
  std::string msg_;
};

class RwRace : public testing::TestWithParam<bool> {};

TEST_P(RwRace, ReadsSeeWholeBlocksAndReopenResolvesTheSameWrites) {
  const bool sparse = GetParam();
  test::TempDir dir;
  ImageSpec spec;
  spec.upper = UpperSpec{dir.file("race.data"), dir.file("race.index")};
  lsmt::CreateOptions co;
  co.virtual_size = kBlocks * 4096;
  co.sparse = sparse;
  ASSERT_OBD_OK(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
  ASSERT_OBD_ASSIGN(ImagePtr img, open_image(spec));

  FirstError err;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> torn{0}, reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; t++) {
    readers.emplace_back([&, t] {
      std::mt19937_64 rng(50 + t);
      std::vector<uint8_t> buf(4 * 4096);
      while (!stop && !err.failed) {
        uint64_t b = rng() % (kBlocks - 3);
        err.note(img->pread(buf.data(), buf.size(), b * 4096).status(), "race read");
        // Sparse data is overwritten in place, so only append reads must be whole.
        for (uint64_t k = 0; k < 4 && !sparse; k++)
          if (!whole(buf.data() + k * 4096, b + k)) torn++;
        reads++;
      }
    });
  }
  std::vector<std::thread> writers;
  for (uint64_t t = 0; t < 8; t++) {
    writers.emplace_back([&, t] {
      std::mt19937_64 rng(t);
      std::vector<uint8_t> buf(8 * 4096);
      for (uint64_t seq = 1; seq <= 1500 && !err.failed; seq++) {
        uint64_t n = 1 + rng() % 8, b = rng() % (kBlocks - n + 1);
        if (rng() % 16 == 0) {
          err.note(img->punch_hole(b * 4096, n * 4096), "race discard");
          continue;
        }
        for (uint64_t k = 0; k < n; k++) stamp(buf.data() + k * 4096, t + 1, seq, b + k);
        err.note(img->pwrite(buf.data(), n * 4096, b * 4096), "race write");
      }
    });
  }
  for (auto& w : writers) w.join();
  stop = true;
  for (auto& r : readers) r.join();
  ASSERT_FALSE(err.failed) << err.message();
  EXPECT_EQ(torn.load(), 0u) << "torn blocks in " << reads.load() << " reads";

  std::vector<uint8_t> before(kBlocks * 4096), after(kBlocks * 4096);
  ASSERT_OBD_OK(img->pread(before.data(), before.size(), 0).status());
  ASSERT_OBD_OK(img->sync());
  img.reset();
  ASSERT_OBD_ASSIGN(img, open_image(spec));
  ASSERT_OBD_OK(img->pread(after.data(), after.size(), 0).status());
  for (uint64_t b = 0; b < kBlocks; b++)
    EXPECT_EQ(std::memcmp(before.data() + b * 4096, after.data() + b * 4096, 4096), 0)
        << "block " << b << " differs after reopen";
}

INSTANTIATE_TEST_SUITE_P(Upper, RwRace, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "Sparse" : "Append"; });

}  // namespace
