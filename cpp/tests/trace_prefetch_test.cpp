// File-list prefetch: an ext4 image made by the real mkfs + apply from a
// small tar, read through a counting File. Every 4 KiB data block of every
// file starts with a tag naming the file and block, so the test finds each
// file's blocks in the raw image by itself, without libext2fs.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "archive/byte_stream.h"
#include "ext4/apply.h"
#include "tar/header.h"
#include "tests/counting_file.h"
#include "tests/test_util.h"
#include "trace/prefetch.h"

using namespace obd;

namespace {

constexpr uint64_t kBlock = 4096;

std::string tag(const std::string& name, size_t i) { return "@@F:" + name + "#" + std::to_string(i) + "#"; }

std::vector<uint8_t> file_content(const std::string& name, size_t size) {
  std::vector<uint8_t> v(size, uint8_t('a' + name.size() % 26));
  for (size_t i = 0; i * kBlock < size; i++) {
    std::string t = tag(name, i);
    std::copy_n(t.begin(), std::min(t.size(), size - i * kBlock), v.begin() + i * kBlock);
  }
  return v;
}

class TarBuilder {
 public:
  void dir(const std::string& name) { header(name, '5', 0, "", 0755); }
  void file(const std::string& name, size_t size) {
    header(name, '0', size, "", 0644);
    auto c = file_content(name, size);
    out_.insert(out_.end(), c.begin(), c.end());
    out_.resize((out_.size() + 511) / 512 * 512, 0);
  }
  void symlink(const std::string& name, const std::string& target) { header(name, '2', 0, target, 0777); }
  std::vector<uint8_t> finish() {
    out_.resize(out_.size() + 1024, 0);
    return std::move(out_);
  }

 private:
  void header(const std::string& name, char type, uint64_t size, const std::string& link, uint32_t mode) {
    uint8_t h[512] = {};
    tar::put_str(h, tar::kName, name);
    tar::put_octal(h, tar::kMode, mode);
    tar::put_octal(h, tar::kUid, 0);
    tar::put_octal(h, tar::kGid, 0);
    tar::put_octal(h, tar::kSize, size);
    tar::put_octal(h, tar::kMtime, 1700000000);
    h[tar::kTypeflag] = uint8_t(type);
    tar::put_str(h, tar::kLinkname, link);
    tar::seal_ustar(h);
    out_.insert(out_.end(), h, h + 512);
  }
  std::vector<uint8_t> out_;
};

const std::map<std::string, size_t> kFiles = {
    {"etc/x", 10000}, {"etc/y", 8192}, {"dir/a", 20000}, {"dir/sub/b", 5000}, {"dir/sub/c", 0},
    {"big", (5 << 19) + 100},  // the last block holds a whole tag
};

using Reads = std::vector<std::pair<uint64_t, uint64_t>>;

class TracePrefetch : public ::testing::Test {
 protected:
  // Per test, not per suite: a failed suite setup only skips its tests.
  void SetUp() override {
    raw_ = dir_.file("image.raw");
    TarBuilder t;
    t.dir("etc/");
    t.dir("dir/");
    t.dir("dir/sub/");
    for (auto& [name, size] : kFiles) t.file(name, size);
    t.symlink("lnk", "/etc/x");
    t.symlink("dir/up", "..");  // a link out of the tree: not followed by the walk
    auto tar = t.finish();
    auto dev = open_local(raw_, OpenMode::kCreateTruncate);
    ASSERT_TRUE(dev.is_ok());
    ASSERT_OBD_OK((*dev)->truncate(32 << 20));
    ext4::ApplyOptions o;
    o.mkfs = true;
    auto r = ext4::apply_layer(*dev, make_memory_stream(tar.data(), tar.size(), "layer.tar"), o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    // Find every file's blocks by their tags.
    std::vector<uint8_t> img(32 << 20);
    ASSERT_OBD_OK((*dev)->read_exact(img.data(), img.size(), 0, Code::kEIO, "image"));
    for (auto& [name, size] : kFiles)
      for (size_t i = 0; i * kBlock < size; i++) {
        std::string t = tag(name, i);
        for (uint64_t b = 0; b < img.size() / kBlock; b++)
          if (std::equal(t.begin(), t.end(), img.begin() + b * kBlock)) owner_[b] = name;
      }
    size_t want = 0;
    for (auto& [name, size] : kFiles) want += (size + kBlock - 1) / kBlock;
    ASSERT_EQ(owner_.size(), want);
    image_ = std::move(img);
    auto f = open_local(raw_, OpenMode::kRead);
    ASSERT_TRUE(f.is_ok());
    counting_ = std::make_shared<test::CountingFile>(*f);
  }

  // The files whose data blocks were read, each with the blocks read.
  std::map<std::string, std::set<uint64_t>> data_read() const {
    std::map<std::string, std::set<uint64_t>> out;
    for (auto& [off, len] : counting_->reads())
      for (uint64_t b = off / kBlock; b * kBlock < off + len; b++)
        if (auto it = owner_.find(b); it != owner_.end()) out[it->second].insert(b);
    return out;
  }
  std::set<uint64_t> blocks_of(const std::string& name) {
    std::set<uint64_t> s;
    for (auto& [b, n] : owner_)
      if (n == name) s.insert(b);
    return s;
  }
  uint64_t bytes_of(const std::vector<std::string>& names) {
    uint64_t n = 0;
    for (auto& name : names) n += blocks_of(name).size() * kBlock;
    return n;
  }
  Result<trace::PrefetchStats> prefetch(std::vector<std::string> paths) {
    return trace::prefetch_paths(counting_, paths, 4);
  }

  test::TempDir dir_;
  std::string raw_;
  std::map<uint64_t, std::string> owner_;  // block -> file
  std::vector<uint8_t> image_;
  std::shared_ptr<test::CountingFile> counting_;
};

}  // namespace

TEST_F(TracePrefetch, OneFileReadsExactlyItsBlocks) {
  ASSERT_OBD_ASSIGN(auto st, prefetch({"/etc/x"}));
  auto read = data_read();
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read["etc/x"], blocks_of("etc/x"));
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.bytes, bytes_of({"etc/x"}));
  // Its three blocks are contiguous: one merged range, one read.
  EXPECT_EQ(st.reads, 1u);
  uint64_t first = *blocks_of("etc/x").begin();
  Reads data;
  for (auto& r : counting_->reads())
    if (r.first == first * kBlock) data.push_back(r);
  EXPECT_EQ(data, (Reads{{first * kBlock, 3 * kBlock}}));
}

TEST_F(TracePrefetch, FileRangesAreTheFilesBlocks) {
  uint64_t errors = 0;
  std::vector<std::string> paths = {"/etc/y", "/lnk", "/dir/sub/c"};
  ASSERT_OBD_ASSIGN(auto ranges, trace::file_ranges(counting_, paths, &errors));
  EXPECT_EQ(errors, 0u);
  std::set<uint64_t> got;
  for (auto& e : ranges) {
    EXPECT_EQ(e.off % kBlock, 0u);
    EXPECT_EQ(e.len % kBlock, 0u);
    for (uint64_t b = e.off / kBlock; b < (e.off + e.len) / kBlock; b++) EXPECT_TRUE(got.insert(b).second);
  }
  std::set<uint64_t> want = blocks_of("etc/y");
  for (uint64_t b : blocks_of("etc/x")) want.insert(b);
  EXPECT_EQ(got, want);
  // List order: y's blocks come first.
  ASSERT_FALSE(ranges.empty());
  EXPECT_EQ(ranges.front().off, *blocks_of("etc/y").begin() * kBlock);
}

TEST_F(TracePrefetch, DirectoryReadsTheWholeTree) {
  for (std::string p : {"/dir/", "/dir/*", "/dir"}) {
    counting_->clear();
    ASSERT_OBD_ASSIGN(auto st, prefetch({p}));
    auto read = data_read();
    EXPECT_EQ(read.size(), 2u) << p;
    EXPECT_EQ(read["dir/a"], blocks_of("dir/a")) << p;
    EXPECT_EQ(read["dir/sub/b"], blocks_of("dir/sub/b")) << p;
    EXPECT_EQ(st.errors, 0u) << p;
    EXPECT_EQ(st.bytes, bytes_of({"dir/a", "dir/sub/b"})) << p;
  }
}

TEST_F(TracePrefetch, MissingPathsAreCountedNotFatal) {
  ASSERT_OBD_ASSIGN(auto st, prefetch({"/nope"}));
  EXPECT_EQ(st.errors, 1u);
  EXPECT_EQ(st.bytes, 0u);
  EXPECT_TRUE(data_read().empty());

  counting_->clear();
  ASSERT_OBD_ASSIGN(st, prefetch({"/etc/nope", "/etc/x", "/etc/x/", "/nope/*"}));
  EXPECT_EQ(st.errors, 3u);
  auto read = data_read();
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read["etc/x"], blocks_of("etc/x"));
}

TEST_F(TracePrefetch, LongFilesAreReadInPiecesOfAtMostOneMiB) {
  ASSERT_OBD_ASSIGN(auto st, prefetch({"/big", "/etc/x"}));
  auto read = data_read();
  EXPECT_EQ(read["big"], blocks_of("big"));
  EXPECT_EQ(read["etc/x"], blocks_of("etc/x"));
  EXPECT_EQ(st.bytes, bytes_of({"big", "etc/x"}));
  EXPECT_GE(st.reads, 3u);  // 2.5 MiB of big alone needs three
  for (auto& [off, len] : counting_->reads()) EXPECT_LE(len, trace::kMaxPiece);
}

TEST_F(TracePrefetch, TheImageIsOnlyRead) {
  ASSERT_OBD_ASSIGN(auto st, prefetch({"/"}));
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(data_read().size(), kFiles.size() - 1);  // every file but the empty one
  auto f = open_local(raw_, OpenMode::kRead);
  ASSERT_TRUE(f.is_ok());
  std::vector<uint8_t> now(image_.size());
  ASSERT_OBD_OK((*f)->read_exact(now.data(), now.size(), 0, Code::kEIO, "image"));
  EXPECT_TRUE(now == image_);
}

TEST_F(TracePrefetch, NoFilesystemIsAnError) {
  auto blank = make_memory_file("blank", std::vector<uint8_t>(1 << 20));
  std::vector<std::string> paths = {"/etc/x"};
  auto r = trace::prefetch_paths(blank, paths, 2);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kEXT4_ERROR);
}
