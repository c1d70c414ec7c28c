// Non-blocking reads (io/nowait.h): a local file inside a NoWaitScope reads
// what the page cache holds and refuses the rest; a device queue with
// inline reads hands a refused read to its worker and still returns the
// right bytes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <random>
#include <thread>
#include <vector>

#include "device/image_device.h"
#include "image/image.h"
#include "io/file.h"
#include "io/nowait.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr size_t kLen = 1 << 20;

// Drops the file's clean pages from the page cache (what a cold read meets).
void evict(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::fdatasync(fd), 0);
  ASSERT_EQ(::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
  ::close(fd);
}

std::vector<uint8_t> write_file(const std::string& path, uint64_t seed) {
  std::mt19937_64 rng(seed);
  auto bytes = test::random_bytes(rng, kLen);
  auto f = open_local(path, OpenMode::kCreateTruncate);
  EXPECT_TRUE(f.is_ok());
  EXPECT_TRUE((*f)->pwrite(bytes.data(), bytes.size(), 0).is_ok());
  return bytes;
}

TEST(NoWait, ScopesNestAndRestore) {
  EXPECT_FALSE(nowait_active());
  {
    NoWaitScope outer;
    EXPECT_TRUE(nowait_active());
    {
      NoWaitScope inner;
      EXPECT_EQ(would_block("x").code(), Code::kEAGAIN);
      EXPECT_TRUE(inner.refused());
    }
    EXPECT_TRUE(nowait_active());
    EXPECT_FALSE(outer.refused());  // the inner scope's refusal was its own
  }
  EXPECT_FALSE(nowait_active());
}

TEST(NoWait, LocalFileReadsCachedPagesAndRefusesColdOnes) {
  test::TempDir dir;
  std::string path = dir.file("data");
  auto bytes = write_file(path, 1);
  for (IoEngine engine : {IoEngine::kPsync, IoEngine::kIoUring}) {
    auto f = open_local(path, OpenMode::kRead, engine);
    ASSERT_TRUE(f.is_ok());
    std::vector<uint8_t> got(4096);
    ASSERT_TRUE((*f)->pread(got.data(), got.size(), 8192).is_ok());  // now in the page cache
    {
      NoWaitScope nowait;
      auto n = (*f)->pread(got.data(), got.size(), 8192);
      ASSERT_TRUE(n.is_ok()) << n.status().to_string();
      EXPECT_FALSE(nowait.refused());
      EXPECT_TRUE(std::equal(got.begin(), got.end(), bytes.begin() + 8192));
    }
    evict(path);
    {
      NoWaitScope nowait;
      auto n = (*f)->pread(got.data(), got.size(), 65536);
      if (n.is_ok()) GTEST_SKIP() << "this filesystem reads cold pages under RWF_NOWAIT";
      EXPECT_EQ(n.status().code(), Code::kEAGAIN);
      EXPECT_TRUE(nowait.refused());
    }
    auto n = (*f)->pread(got.data(), got.size(), 65536);  // outside the scope it waits
    ASSERT_TRUE(n.is_ok());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), bytes.begin() + 65536));
  }
}

// Reads of a cold lower go to the worker; cached ones run inline. Either
// way every read returns the lower's bytes, and completions run once each.
TEST(NoWait, DeviceHandsColdReadsToItsWorkers) {
  test::TempDir dir;
  std::mt19937_64 rng(2);
  auto content = test::random_bytes(rng, kLen);
  std::string lower = dir.file("lower.lsmt");
  ASSERT_TRUE(test::make_lower(lower, content).is_ok());
  ImageSpec spec;
  spec.lowers.push_back({lower});
  auto img = open_image(spec);
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  auto dev = make_image_device(*img);
  auto q = dev->open_queue(0, {.workers = 1, .inline_reads = true});
  ASSERT_TRUE(q.is_ok());
  constexpr int kDepth = 32;
  for (int round = 0; round < 3; round++) {
    evict(lower);  // round 0 cold, then partly cached
    std::vector<uint8_t> bufs(kDepth * 4096);
    std::vector<iovec> iovs(kDepth);
    std::vector<IoRequest> reqs(kDepth);
    static std::atomic<int> ok{0};
    ok = 0;
    for (int i = 0; i < kDepth; i++) {
      iovs[i] = {bufs.data() + i * 4096, 4096};
      reqs[i] = {.op = IoOp::kRead, .offset = uint64_t(i) * 32768, .length = 4096, .iov = &iovs[i], .iovcnt = 1,
                 .done = [](IoRequest&, const Status& s) { ok += s.is_ok(); }};
    }
    for (auto& r : reqs) (*q)->submit(r);
    (*q)->reap(kDepth);
    ASSERT_EQ(ok.load(), kDepth);
    EXPECT_EQ((*q)->in_flight(), 0u);
    for (int i = 0; i < kDepth; i++)
      ASSERT_TRUE(std::equal(bufs.begin() + i * 4096, bufs.begin() + (i + 1) * 4096, content.begin() + i * 32768))
          << "round " << round << " read " << i;
  }
}

}  // namespace
