// A layer file cut shorter while an image has it open: reading a mapped
// extent past the new end fails with LSMT_TRUNCATED naming the file and the
// offset, for a committed lower and for an upper's data file, through the
// one-extent path and the batched path alike. It never reads as zeros.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "image/image.h"
#include "lsmt/rw_layer.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr uint64_t kSize = 256 << 10;
constexpr uint64_t kBlock = 4096;

class StackTruncated : public testing::Test {
 protected:
  // Expects a read of [off, off+len) to fail with LSMT_TRUNCATED naming `file`.
  void expect_truncated(uint64_t off, size_t len, const std::string& file) {
    std::vector<uint8_t> buf(len);
    auto r = img_->pread(buf.data(), len, off);
    ASSERT_FALSE(r.is_ok()) << "read at " << off << " of " << file << " after truncation returned " << r.value();
    EXPECT_EQ(r.status().code(), Code::kLSMT_TRUNCATED) << r.status().to_string();
    EXPECT_NE(r.status().message().find(file), std::string::npos) << r.status().to_string();
    EXPECT_NE(r.status().message().find("offset"), std::string::npos) << r.status().to_string();
  }

  void cut(const std::string& path, uint64_t size) { ASSERT_EQ(::truncate(path.c_str(), off_t(size)), 0) << path; }

  test::TempDir dir_;
  std::mt19937_64 rng_{11};
  ImagePtr img_;
};

TEST_F(StackTruncated, LowerCutAfterOpenFailsInsteadOfReadingZeros) {
  std::string lower = dir_.file("lower.lsmt");
  auto content = test::random_bytes(rng_, kSize);
  ASSERT_OBD_OK(test::make_lower(lower, content));
  ImageSpec spec;
  spec.lowers = {{lower}};
  ASSERT_OBD_ASSIGN(img_, open_image(spec));
  cut(lower, 4096 + kSize / 2);  // header + the first half of the data

  std::vector<uint8_t> head(kBlock);
  ASSERT_OBD_OK(img_->pread(head.data(), kBlock, 0).status());
  EXPECT_EQ(std::memcmp(head.data(), content.data(), kBlock), 0);
  expect_truncated(kSize - kBlock, kBlock, lower);  // one extent
  expect_truncated(0, kSize, lower);                // one extent, partly past the end
}

TEST_F(StackTruncated, LowerCutUnderAnUpperFailsInABatchedRead) {
  std::string lower = dir_.file("lower.lsmt");
  ASSERT_OBD_OK(test::make_lower(lower, test::random_bytes(rng_, kSize)));
  ImageSpec spec;
  spec.lowers = {{lower}};
  spec.upper = UpperSpec{dir_.file("up.data"), dir_.file("up.index")};
  lsmt::CreateOptions co;
  co.virtual_size = kSize;
  ASSERT_OBD_OK(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
  ASSERT_OBD_ASSIGN(img_, open_image(spec));
  // Upper blocks between lower extents: a whole read is a batch of pieces.
  auto up = test::random_bytes(rng_, kBlock);
  for (uint64_t b = 1; b < kSize / kBlock; b += 8) ASSERT_OBD_OK(img_->pwrite(up.data(), kBlock, b * kBlock));
  cut(lower, 4096 + kSize / 2);
  expect_truncated(0, kSize, lower);
}

class UpperTruncated : public StackTruncated, public testing::WithParamInterface<bool> {};

TEST_P(UpperTruncated, UpperDataCutAfterOpenFails) {
  ImageSpec spec;
  spec.upper = UpperSpec{dir_.file("up.data"), dir_.file("up.index")};
  lsmt::CreateOptions co;
  co.virtual_size = kSize;
  co.sparse = GetParam();
  ASSERT_OBD_OK(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
  ASSERT_OBD_ASSIGN(img_, open_image(spec));
  auto data = test::random_bytes(rng_, kSize);
  ASSERT_OBD_OK(img_->pwrite(data.data(), kSize, 0));
  cut(spec.upper->data, 4096 + kSize / 2);
  expect_truncated(kSize - kBlock, kBlock, spec.upper->data);
}

INSTANTIATE_TEST_SUITE_P(Upper, UpperTruncated, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "Sparse" : "Append"; });

}  // namespace
