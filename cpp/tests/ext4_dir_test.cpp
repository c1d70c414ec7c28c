// Large directories in the ext4 apply: a layer of 6000 names in one
// directory, then a layer removing half of them and adding others. The
// directory ends hash-indexed, libext2fs lists exactly the expected names,
// e2fsck -fn finds nothing to fix, and the same layers give the same bytes.
#include <ext2fs/ext2fs.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <set>

#include "archive/byte_stream.h"
#include "ext4/apply.h"
#include "ext4/fs.h"
#include "tar/header.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr int kNames = 6000;

class Tar {
 public:
  void entry(const std::string& name, char type) {
    uint8_t h[512] = {};
    tar::put_str(h, tar::kName, name);
    tar::put_octal(h, tar::kMode, type == '5' ? 0755 : 0644);
    tar::put_octal(h, tar::kUid, 0);
    tar::put_octal(h, tar::kGid, 0);
    tar::put_octal(h, tar::kSize, 0);
    tar::put_octal(h, tar::kMtime, 1700000000);
    h[tar::kTypeflag] = uint8_t(type);
    tar::seal_ustar(h);
    out_.insert(out_.end(), h, h + 512);
  }
  std::vector<uint8_t> finish() {
    out_.resize(out_.size() + 1024, 0);
    return std::move(out_);
  }

 private:
  std::vector<uint8_t> out_;
};

// Long enough names that the index needs many leaves.
std::string name(int i) { return "entry-" + std::to_string(i) + "-" + std::string(40 + i % 30, 'q'); }

std::vector<std::vector<uint8_t>> layers() {
  Tar a;
  a.entry("d/", '5');
  for (int i = 0; i < kNames; ++i) a.entry("d/" + name(i), '0');
  Tar b;
  for (int i = 0; i < kNames; i += 2) b.entry("d/.wh." + name(i), '0');
  for (int i = 0; i < 100; ++i) b.entry("d/added-" + std::to_string(i), '0');
  return {a.finish(), b.finish()};
}

std::set<std::string> expected() {
  std::set<std::string> s;
  for (int i = 1; i < kNames; i += 2) s.insert(name(i));
  for (int i = 0; i < 100; ++i) s.insert("added-" + std::to_string(i));
  return s;
}

struct Collect {
  std::set<std::string> names;
};

int collect(ext2_ino_t, int, ext2_dir_entry* de, int, int, char*, void* priv) {
  int len = ext2fs_dirent_name_len(de);
  std::string n(de->name, size_t(len));
  if (n != "." && n != "..") static_cast<Collect*>(priv)->names.insert(n);
  return 0;
}

void build(const std::string& path) {
  auto dev = open_local(path, OpenMode::kCreateTruncate);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  ASSERT_OBD_OK((*dev)->truncate(256 << 20));  // 16k inodes
  bool first = true;
  for (auto& tar : layers()) {
    ext4::ApplyOptions o;
    o.mkfs = first;
    o.mkfs_opts.seed = "dirs";
    o.fs.sync = false;
    first = false;
    auto r = ext4::apply_layer(*dev, make_memory_stream(tar.data(), tar.size(), "layer.tar"), o);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
}

TEST(Ext4Dir, LargeDirectoryIsIndexedCompleteAndClean) {
  test::TempDir tmp;
  std::string a = tmp.file("a.raw"), b = tmp.file("b.raw");
  ASSERT_NO_FATAL_FAILURE(build(a));
  ASSERT_NO_FATAL_FAILURE(build(b));

  auto fa = open_local(a, OpenMode::kRead);
  ASSERT_TRUE(fa.is_ok());
  ASSERT_OBD_ASSIGN(auto fs, ext4::Fs::open_read_only(*fa, ext4::FsOptions{}));
  ext2_ino_t dir = 0;
  ASSERT_EQ(ext2fs_lookup(fs->get(), EXT2_ROOT_INO, "d", 1, nullptr, &dir), 0);
  ext2_inode inode;
  ASSERT_EQ(ext2fs_read_inode(fs->get(), dir, &inode), 0);
  EXPECT_TRUE(inode.i_flags & EXT2_INDEX_FL) << "the directory has no hash index";
  Collect c;
  ASSERT_EQ(ext2fs_dir_iterate2(fs->get(), dir, 0, nullptr, collect, &c), 0);
  EXPECT_EQ(c.names, expected());
  fs.reset();

  std::string cmd = "e2fsck -fn " + a + " >/dev/null 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << "e2fsck -fn found problems in " << a;
  std::string cmp = "cmp -s " + a + " " + b;
  EXPECT_EQ(std::system(cmp.c_str()), 0) << "the same layers gave different images";
}

}  // namespace
