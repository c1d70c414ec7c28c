// A ZFile batch read (pread_batch) reads and decompresses each stored block
// once, however many of its requests share that block: counted as bytes read
// from the compressed file, against each block's stored length.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "io/file.h"
#include "tests/counting_file.h"
#include "tests/test_util.h"
#include "zfile/reader.h"
#include "zfile/writer.h"

using namespace obd;
using obd::test::CountingFile;

namespace {

Status write_zfile(const FilePtr& out, const std::vector<uint8_t>& raw) {
  OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(out, ZFileOptions{}));
  OBD_TRY(w->append(raw.data(), raw.size()));
  return w->finish();
}

using Ranges = std::vector<std::pair<uint64_t, size_t>>;

class ZFileBatch : public testing::Test {
 protected:
  static constexpr uint32_t kBs = 4096;  // ZFileOptions' default block size
  static constexpr uint64_t kBlocks = 64;

  void SetUp() override {
    raw_.resize(kBlocks * kBs - 1000);  // a partial last block
    for (size_t i = 0; i < raw_.size(); i++) raw_[i] = uint8_t(i % 251 < 200 ? i / 64 : rng_());
    FilePtr mem = make_memory_file("batch.zfile");
    ASSERT_OBD_OK(write_zfile(mem, raw_));
    counting_ = std::make_shared<CountingFile>(mem);
    ASSERT_OBD_ASSIGN(zf_, open_zfile(counting_));
    // Each block's stored length, measured by reading one byte of it alone.
    stored_.resize(kBlocks);
    uint8_t one;
    for (uint64_t b = 0; b < kBlocks; b++) {
      counting_->bytes = 0;
      ASSERT_OBD_OK(zf_->pread(&one, 1, b * kBs).status());
      stored_[b] = counting_->bytes;
    }
  }

  // Reads `ranges` as one batch; checks the bytes, the counts and that the
  // compressed file was read exactly once per block the batch touches.
  void run(const Ranges& ranges, const std::string& what) {
    std::vector<std::vector<uint8_t>> bufs;
    std::vector<ReadReq> reqs;
    std::set<uint64_t> blocks;
    for (auto [off, len] : ranges) bufs.emplace_back(len, 0xee);
    for (size_t i = 0; i < ranges.size(); i++) {
      auto [off, len] = ranges[i];
      reqs.push_back({bufs[i].data(), len, off});
      uint64_t end = std::min<uint64_t>(off + len, raw_.size());
      for (uint64_t b = off / kBs; off < raw_.size() && b * kBs < end; b++) blocks.insert(b);
    }
    counting_->bytes = 0;
    ASSERT_OBD_OK(zf_->pread_batch(reqs));
    uint64_t want = 0;
    for (uint64_t b : blocks) want += stored_[b];
    ASSERT_EQ(counting_->bytes.load(), want) << what << ": stored bytes read vs each needed block once";
    for (size_t i = 0; i < reqs.size(); i++) {
      uint64_t off = ranges[i].first;
      size_t n = off >= raw_.size() ? 0 : std::min<uint64_t>(ranges[i].second, raw_.size() - off);
      ASSERT_EQ(reqs[i].done, n) << what << ": request " << i;
      if (n) ASSERT_EQ(std::memcmp(bufs[i].data(), raw_.data() + off, n), 0) << what << ": request " << i << " bytes";
    }
  }

  std::mt19937_64 rng_{1};
  std::vector<uint8_t> raw_;
  std::shared_ptr<CountingFile> counting_;
  FilePtr zf_;
  std::vector<uint64_t> stored_;
};

// Pieces of one stack read: neighbours sharing blocks 0 and 1, a duplicate,
// a whole block wanted twice, and ranges at and past the end.
TEST_F(ZFileBatch, SharedBlocksAreReadOnce) {
  run({{0, 1000},
       {1000, kBs + 100},
       {kBs + 100, 2 * kBs},
       {0, 1000},
       {10 * kBs, kBs},
       {10 * kBs + 512, 512},
       {raw_.size() - 10, 100},
       {raw_.size() + 5, 10}},
      "shared blocks");
}

TEST_F(ZFileBatch, RandomBatchesReadEachBlockOnce) {
  for (int round = 0; round < 500; round++) {
    Ranges ranges;
    int n = 2 + int(rng_() % 12);
    for (int i = 0; i < n; i++) ranges.push_back({rng_() % (raw_.size() + 100), 1 + size_t(rng_() % (3 * kBs))});
    run(ranges, "round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
}

// Wider than one window of stored bytes (4 MiB): still each block once, so
// two requests for all of it read less than the whole file.
TEST(ZFileBatchWide, WiderThanAWindowReadsEachBlockOnce) {
  std::mt19937_64 rng(2);
  std::vector<uint8_t> big = test::random_bytes(rng, 16 << 20);
  FilePtr mem = make_memory_file("big.zfile");
  ASSERT_OBD_OK(write_zfile(mem, big));
  auto counting = std::make_shared<CountingFile>(mem);
  ASSERT_OBD_ASSIGN(FilePtr zf, open_zfile(counting));
  std::vector<uint8_t> a(big.size()), b(big.size());
  std::vector<ReadReq> reqs{{a.data(), a.size(), 0}, {b.data(), b.size(), 0}};
  ASSERT_OBD_ASSIGN(uint64_t file_size, mem->size());
  counting->bytes = 0;
  ASSERT_OBD_OK(zf->pread_batch(reqs));
  EXPECT_TRUE(a == big && b == big) << "the batch read wrong bytes";
  EXPECT_LT(counting->bytes.load(), file_size);
}

}  // namespace
