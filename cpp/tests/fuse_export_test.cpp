// The FUSE file export on a real mount (needs root and /dev/fuse): the one
// file's attributes and directory entry, O_DIRECT and unaligned reads,
// writes, holes and zero ranges, refused truncation and growth, a read-only
// image, and close with the file still open (its I/O fails, nothing hangs).
#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "device/image_device.h"
#include "frontend/fuse/fuse_export.h"
#include "lsmt/rw_layer.h"
#include "tests/test_util.h"

using namespace obd;
namespace ff = obd::frontend::fuse;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

bool mounted(const std::string& dir) {
  std::ifstream f("/proc/mounts");
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str().find(" " + dir + " ") != std::string::npos;
}

// A 4 KiB-aligned buffer for O_DIRECT.
struct Aligned {
  explicit Aligned(size_t n) : p(static_cast<uint8_t*>(std::aligned_alloc(4096, n))), n(n) {}
  ~Aligned() { std::free(p); }
  uint8_t* p;
  size_t n;
};

class FuseExportTest : public testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/fuse";
    std::mt19937_64 rng(7);
    lower_ = test::random_bytes(rng, 4 * kMiB);
    mnt_ = dir_.file("mnt");
    ASSERT_EQ(::mkdir(mnt_.c_str(), 0700), 0);
  }

  std::unique_ptr<ff::Export> start(bool writable) {
    ImageSpec spec;
    std::string lower = dir_.file("lower.lsmt");
    EXPECT_TRUE(test::make_lower(lower, lower_).is_ok());
    spec.lowers.push_back({lower});
    if (writable) {
      lsmt::CreateOptions co;
      co.virtual_size = 8 * kMiB;
      spec.upper = UpperSpec{dir_.file("upper.data"), dir_.file("upper.index")};
      EXPECT_TRUE(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co).is_ok());
    }
    auto img = open_image(spec);
    EXPECT_TRUE(img.is_ok()) << img.status().to_string();
    if (!img.is_ok()) return nullptr;
    auto x = ff::start_export(make_image_device(img.value()), mnt_);
    EXPECT_TRUE(x.is_ok()) << x.status().to_string();
    return x.is_ok() ? std::move(x).value() : nullptr;
  }

  test::TempDir dir_;
  std::vector<uint8_t> lower_;
  std::string mnt_;
};

TEST_F(FuseExportTest, ServesOneFile) {
  auto x = start(true);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->file(), mnt_ + "/disk");
  struct stat st;
  ASSERT_EQ(::stat(x->file().c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(uint64_t(st.st_size), 8 * kMiB);
  DIR* d = ::opendir(mnt_.c_str());
  ASSERT_TRUE(d);
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d)) names.push_back(e->d_name);
  ::closedir(d);
  EXPECT_EQ(names, (std::vector<std::string>{".", "..", "disk"}));
  EXPECT_NE(::access((mnt_ + "/other").c_str(), F_OK), 0);

  int fd = ::open(x->file().c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  ASSERT_GE(fd, 0) << strerror(errno);
  Aligned buf(64 * 1024);
  ASSERT_EQ(::pread(fd, buf.p, buf.n, 1 * kMiB), ssize_t(buf.n));
  EXPECT_EQ(std::memcmp(buf.p, lower_.data() + kMiB, buf.n), 0);
  // Unaligned reads are widened to sectors inside the export.
  std::vector<uint8_t> odd(3000);
  ASSERT_EQ(::pread(fd, odd.data(), odd.size(), 1000), ssize_t(odd.size()));
  EXPECT_EQ(std::memcmp(odd.data(), lower_.data() + 1000, odd.size()), 0);
  // Past the end: short, then nothing.
  ASSERT_EQ(::pread(fd, buf.p, buf.n, 8 * kMiB - 4096), 4096);
  ASSERT_EQ(::pread(fd, buf.p, buf.n, 8 * kMiB), 0);

  // Writes land in the upper.
  std::memset(buf.p, 0xab, 8192);
  ASSERT_EQ(::pwrite(fd, buf.p, 8192, 2 * kMiB), 8192);
  Aligned back(8192);
  ASSERT_EQ(::pread(fd, back.p, 8192, 2 * kMiB), 8192);
  EXPECT_EQ(std::memcmp(back.p, buf.p, 8192), 0);
  ASSERT_EQ(::fsync(fd), 0);
  // A punched hole and a zeroed range read as zeros over the lower data.
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 3 * kMiB, 4096), 0) << strerror(errno);
  ASSERT_EQ(::fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 3 * kMiB + 8192, 4096), 0) << strerror(errno);
  ASSERT_EQ(::pread(fd, buf.p, 16384, 3 * kMiB), 16384);
  for (int i = 0; i < 16384; i++) {
    uint8_t want = (i < 4096 || (i >= 8192 && i < 12288)) ? 0 : lower_[3 * kMiB + i];
    ASSERT_EQ(buf.p[i], want) << "byte " << i;
  }
  // The file neither grows nor shrinks; other fallocate modes are refused.
  EXPECT_EQ(::pwrite(fd, buf.p, 4096, 8 * kMiB), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(::ftruncate(fd, 4 * kMiB), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::fallocate(fd, 0, 0, 4096), -1);
  EXPECT_EQ(errno, EOPNOTSUPP);
  ::close(fd);

  x->close();
  EXPECT_FALSE(mounted(mnt_));
  x->close();  // idempotent
}

TEST_F(FuseExportTest, ReadOnlyImageRefusesWrites) {
  auto x = start(false);
  ASSERT_TRUE(x);
  struct stat st;
  ASSERT_EQ(::stat(x->file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0222, 0u);
  EXPECT_EQ(::open(x->file().c_str(), O_RDWR | O_CLOEXEC), -1);
  EXPECT_EQ(errno, EROFS);
  int fd = ::open(x->file().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  std::vector<uint8_t> b(4096);
  ASSERT_EQ(::pread(fd, b.data(), b.size(), 4096), 4096);
  EXPECT_EQ(std::memcmp(b.data(), lower_.data() + 4096, 4096), 0);
  ::close(fd);
}

// A user still holding the file (a loop device left attached) must not
// keep close() waiting: the connection is aborted and its I/O fails.
TEST_F(FuseExportTest, CloseWithFileOpenFailsItsIo) {
  auto x = start(false);
  ASSERT_TRUE(x);
  int fd = ::open(x->file().c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  x->close();
  EXPECT_FALSE(mounted(mnt_));
  std::vector<uint8_t> b(4096);
  EXPECT_EQ(::pread(fd, b.data(), b.size(), 0), -1);
  ::close(fd);
}

}  // namespace
