// The File contract (cpp/io/file.h), checked against every implementation
// with the same properties and fixed seeds: local psync and io_uring files,
// memory, a tar payload view, ZFile readers (LZ4, zstd), a cached remote
// blob, an LSMT stack image (two read-only lowers under an append upper),
// and a downloaded layer's switchable file. Each subject comes with a model
// of its bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <ostream>
#include <random>

#include "cache/cache.h"
#include "download/switchable_file.h"
#include "image/image.h"
#include "io/file.h"
#include "lsmt/rw_layer.h"
#include "layer/blob.h"
#include "tar/wrapper.h"
#include "tests/test_util.h"
#include "zfile/reader.h"
#include "zfile/writer.h"

using namespace obd;

namespace {

struct Subject {
  FilePtr file;
  std::vector<uint8_t> model;  // the bytes the file must hold
  uint64_t align = 1;          // writes and punches: offsets and lengths multiples of this
};

// Blocks of 4 KiB: random, zero, or one repeated byte, so files have holes
// for data_extents and runs that compress.
std::vector<uint8_t> content(uint64_t seed, size_t size) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(size, 0);
  for (size_t off = 0; off < size; off += 4096) {
    size_t n = std::min<size_t>(4096, size - off), kind = rng() % 20;
    if (kind < 12) {
      for (size_t i = 0; i < n; i++) v[off + i] = uint8_t(rng());
    } else if (kind >= 15) {
      std::fill_n(v.begin() + off, n, uint8_t(kind));
    }
  }
  return v;
}

const size_t kOddSize = (1 << 20) + 1234;  // not a multiple of any block size

#define CHECK_OBD(expr)                                           \
  do {                                                            \
    ::obd::Status _s = (expr);                                    \
    if (!_s) {                                                    \
      ADD_FAILURE() << #expr << ": " << _s.to_string();           \
      return Subject{};                                           \
    }                                                             \
  } while (0)
#define CHECK_ASSIGN(lhs, expr)                                   \
  auto OBD_CONCAT(_r, __LINE__) = (expr);                         \
  CHECK_OBD(OBD_CONCAT(_r, __LINE__).status());                   \
  lhs = std::move(OBD_CONCAT(_r, __LINE__)).value()

Subject local(const test::TempDir& d, IoEngine engine) {
  Subject s{nullptr, content(1, kOddSize), 1};
  std::string path = d.file("local");
  {
    CHECK_ASSIGN(FilePtr f, open_local(path, OpenMode::kCreateTruncate, IoEngine::kPsync));
    CHECK_OBD(f->pwrite(s.model.data(), s.model.size(), 0));
  }
  CHECK_ASSIGN(s.file, open_local(path, OpenMode::kReadWrite, engine));
  return s;
}

Subject memory(const test::TempDir&) {
  Subject s{nullptr, content(2, kOddSize), 1};
  s.file = make_memory_file("memory", s.model);
  return s;
}

// The payload window of a real tar wrapper, as the layer opener sees it.
Subject tar_view(const test::TempDir& d) {
  Subject s{nullptr, content(3, kOddSize), 1};
  std::string path = d.file("layer.tar");
  {
    CHECK_ASSIGN(FilePtr out, open_local(path, OpenMode::kCreateTruncate));
    CHECK_ASSIGN(FilePtr payload, tar::wrap_begin(out));
    CHECK_OBD(payload->pwrite(s.model.data(), s.model.size(), 0));
    CHECK_OBD(tar::wrap_finish(out, s.model.size(), 0100644));
  }
  CHECK_ASSIGN(FilePtr blob, open_local(path, OpenMode::kRead));
  CHECK_ASSIGN(layer::OpenedBlob opened, layer::open_blob(blob, false));
  s.file = opened.payload;
  return s;
}

Subject zfile_of(const test::TempDir& d, zfile::Algorithm alg, uint64_t seed) {
  Subject s{nullptr, content(seed, kOddSize), 1};
  std::string path = d.file("data.zfile");
  {
    CHECK_ASSIGN(FilePtr out, open_local(path, OpenMode::kCreateTruncate));
    ZFileOptions o;
    o.algorithm = alg;
    o.block_size = 8192;
    CHECK_ASSIGN(auto w, ZFileWriter::create(out, o));
    // Uneven appends: the writer cuts blocks itself.
    for (size_t at = 0; at < s.model.size();) {
      size_t n = std::min<size_t>(s.model.size() - at, 10007);
      CHECK_OBD(w->append(s.model.data() + at, n));
      at += n;
    }
    CHECK_OBD(w->finish());
  }
  CHECK_ASSIGN(FilePtr src, open_local(path, OpenMode::kRead));
  CHECK_ASSIGN(s.file, open_zfile(src));
  return s;
}

// A blob read through the remote blob cache (cpp/cache), its source in
// memory: the first reads fetch, later ones hit.
Subject cached(const test::TempDir& d) {
  Subject s{nullptr, content(9, kOddSize), 1};
  cache::CacheOptions o;
  o.dir = d.file("cache");
  o.refill_size = 65536;
  o.evict_interval_ms = 0;
  o.min_free_bytes = 0;
  CHECK_ASSIGN(auto store, cache::CacheStore::open(o));
  CHECK_ASSIGN(s.file, store->open("sha256:c0ffee", make_memory_file("blob", s.model)));
  return s;
}

// Two committed lowers (the upper one a ZFile) under an append upper that
// holds writes and a discard; all-zero blocks of a lower are unmapped.
Subject stack_image(const test::TempDir& d) {
  const size_t kSize = 1 << 20;
  auto bottom = content(6, kSize), top = content(7, kSize);
  CHECK_OBD(test::make_lower(d.file("l0.lsmt"), bottom));
  CHECK_OBD(test::make_lower(d.file("l1.lsmt"), top, int(zfile::Algorithm::kLz4)));
  Subject s{nullptr, bottom, 512};
  for (size_t off = 0; off < kSize; off += 4096)
    if (std::any_of(top.begin() + off, top.begin() + off + 4096, [](uint8_t b) { return b != 0; }))
      std::copy_n(top.begin() + off, 4096, s.model.begin() + off);
  ImageSpec spec;
  spec.lowers = {{d.file("l0.lsmt")}, {d.file("l1.lsmt")}};
  spec.upper = UpperSpec{d.file("up.data"), d.file("up.index")};
  lsmt::CreateOptions co;
  co.virtual_size = kSize;
  CHECK_OBD(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
  CHECK_ASSIGN(ImagePtr img, open_image(spec));
  std::mt19937_64 rng(8);
  for (int i = 0; i < 20; i++) {
    uint64_t off = 512 * (rng() % (kSize / 512 - 64)), len = 512 * (1 + rng() % 64);
    if (i % 5 == 4) {
      CHECK_OBD(img->punch_hole(off, len));
      std::fill_n(s.model.begin() + off, len, 0);
    } else {
      auto bytes = test::random_bytes(rng, len);
      CHECK_OBD(img->pwrite(bytes.data(), len, off));
      std::copy(bytes.begin(), bytes.end(), s.model.begin() + off);
    }
  }
  s.file = img;
  return s;
}

// A layer switched from its remote blob (here memory) to the downloaded
// local copy, as the background download leaves it.
Subject switched(const test::TempDir& d) {
  Subject s = local(d, IoEngine::kPsync);
  if (!s.file) return s;
  auto sw = std::make_shared<download::SwitchableFile>(make_memory_file("remote", s.model), "layer");
  sw->switch_to(s.file);
  s.file = sw;
  return s;
}

struct Maker {
  const char* name;
  std::function<Subject(const test::TempDir&)> make;
};

// Names the subject in test names and messages.
void PrintTo(const Maker& m, std::ostream* os) { *os << m.name; }

const Maker kWritable[] = {
    {"LocalPsync", [](const test::TempDir& d) { return local(d, IoEngine::kPsync); }},
    {"LocalIoUring", [](const test::TempDir& d) { return local(d, IoEngine::kIoUring); }},
    {"Memory", memory},
    {"StackImage", stack_image},
};
const Maker kReadOnly[] = {
    {"TarView", tar_view},
    {"ZFileLz4", [](const test::TempDir& d) { return zfile_of(d, zfile::Algorithm::kLz4, 4); }},
    {"ZFileZstd", [](const test::TempDir& d) { return zfile_of(d, zfile::Algorithm::kZstd, 5); }},
    {"Cached", cached},
    {"DownloadSwitched", switched},
};

class FileContract : public testing::TestWithParam<Maker> {
 protected:
  void SetUp() override {
    s_ = GetParam().make(dir_);
    ASSERT_TRUE(s_.file) << "could not make the subject";
  }

  // Reads all of the file and compares it with the model.
  void expect_matches_model() {
    std::vector<uint8_t> got(s_.model.size() + 4096, 0xEE);
    auto n = s_.file->pread(got.data(), got.size(), 0);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    ASSERT_EQ(n.value(), s_.model.size());
    got.resize(n.value());
    size_t diff = std::mismatch(got.begin(), got.end(), s_.model.begin()).first - got.begin();
    EXPECT_EQ(diff, got.size()) << "first differing byte";
  }

  // A random range of whole `align` units inside the file.
  std::pair<uint64_t, uint64_t> aligned_range(std::mt19937_64& rng, uint64_t max_len) {
    uint64_t units = s_.model.size() / s_.align, len = 1 + rng() % (max_len / s_.align);
    uint64_t off = rng() % (units - len);
    return {off * s_.align, len * s_.align};
  }

  test::TempDir dir_;
  Subject s_;
};

TEST_P(FileContract, SizeIsTheModelSize) {
  auto sz = s_.file->size();
  ASSERT_TRUE(sz.is_ok()) << sz.status().to_string();
  EXPECT_EQ(sz.value(), s_.model.size());
  EXPECT_FALSE(s_.file->name().empty());
}

// Random offsets and lengths, some crossing or beyond the end: a read is
// short only at the end of the file, and returns the model's bytes.
TEST_P(FileContract, RandomPreadsMatchModel) {
  std::mt19937_64 rng(11);
  const uint64_t size = s_.model.size();
  std::vector<uint8_t> buf;
  for (int i = 0; i < 400; i++) {
    uint64_t off = i % 10 == 0 ? size - rng() % 5000 : rng() % (size + 200);
    size_t len = i % 3 == 0 ? rng() % 600 : rng() % 70000;
    buf.assign(len, 0xEE);
    auto n = s_.file->pread(buf.data(), len, off);
    ASSERT_TRUE(n.is_ok()) << "pread " << len << " at " << off << ": " << n.status().to_string();
    size_t want = off >= size ? 0 : std::min<uint64_t>(len, size - off);
    ASSERT_EQ(n.value(), want) << "pread " << len << " at " << off;
    ASSERT_TRUE(std::equal(buf.begin(), buf.begin() + want, s_.model.begin() + off)) << "pread " << len << " at " << off;
  }
}

TEST_P(FileContract, ReadsAtAndPastEndReturnNothing) {
  const uint64_t size = s_.model.size();
  uint8_t b[1024];
  for (uint64_t off : {size, size + 1, size + 512, size + (uint64_t(1) << 40)}) {
    auto n = s_.file->pread(b, sizeof b, off);
    ASSERT_TRUE(n.is_ok()) << off << ": " << n.status().to_string();
    EXPECT_EQ(n.value(), 0u) << off;
  }
  auto n = s_.file->pread(b, sizeof b, size - 100);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(n.value(), 100u);
}

TEST_P(FileContract, PreadBatchEqualsSinglePreads) {
  std::mt19937_64 rng(12);
  const uint64_t size = s_.model.size();
  const int kReqs = 48;
  std::vector<std::vector<uint8_t>> bufs(kReqs), singles(kReqs);
  std::vector<ReadReq> reqs;
  for (int i = 0; i < kReqs; i++) {
    uint64_t off = i == kReqs - 1 ? size + 10 : rng() % size;
    size_t len = 1 + rng() % 40000;
    bufs[i].assign(len, 0xEE);
    reqs.push_back({bufs[i].data(), len, off});
  }
  ASSERT_OBD_OK(s_.file->pread_batch(reqs));
  for (int i = 0; i < kReqs; i++) {
    singles[i].assign(reqs[i].len, 0xEE);
    auto n = s_.file->pread(singles[i].data(), reqs[i].len, reqs[i].off);
    ASSERT_TRUE(n.is_ok());
    EXPECT_EQ(reqs[i].done, n.value()) << "request " << i;
    EXPECT_EQ(bufs[i], singles[i]) << "request " << i;
  }
}

// Every non-zero byte of the model lies inside a reported extent; extents
// are in order and do not overlap.
TEST_P(FileContract, DataExtentsCoverEveryNonZeroByte) {
  auto ex = s_.file->data_extents(0);
  ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
  std::vector<bool> covered(s_.model.size(), false);
  uint64_t prev_end = 0;
  for (const Extent& e : ex.value()) {
    EXPECT_GE(e.off, prev_end);
    prev_end = e.off + e.len;
    for (uint64_t x = e.off; x < std::min<uint64_t>(prev_end, covered.size()); x++) covered[x] = true;
  }
  for (size_t x = 0; x < s_.model.size(); x++)
    if (s_.model[x] != 0 && !covered[x]) FAIL() << "non-zero byte at " << x << " outside every extent";
}

// Properties of writable and of read-only subjects only.
class WritableFileContract : public FileContract {};
class ReadOnlyFileContract : public FileContract {};

TEST_P(ReadOnlyFileContract, RefusesWrites) {
  uint8_t b[512] = {1};
  EXPECT_EQ(s_.file->pwrite(b, sizeof b, 0).code(), Code::kEROFS);
  EXPECT_EQ(s_.file->punch_hole(0, 512).code(), Code::kEROFS);
  expect_matches_model();
}

TEST_P(WritableFileContract, PwriteThenPread) {
  std::mt19937_64 rng(13);
  for (int i = 0; i < 100; i++) {
    auto [off, len] = aligned_range(rng, 20000);
    auto bytes = test::random_bytes(rng, len);
    ASSERT_OBD_OK(s_.file->pwrite(bytes.data(), len, off));
    std::copy(bytes.begin(), bytes.end(), s_.model.begin() + off);
  }
  expect_matches_model();
  ASSERT_OBD_OK(s_.file->sync());
  expect_matches_model();
}

TEST_P(WritableFileContract, PunchHoleReadsZeros) {
  std::mt19937_64 rng(14);
  for (int i = 0; i < 30; i++) {
    auto [off, len] = aligned_range(rng, 64 * 1024);
    ASSERT_OBD_OK(s_.file->punch_hole(off, len));
    std::fill_n(s_.model.begin() + off, len, 0);
  }
  expect_matches_model();
  auto sz = s_.file->size();
  ASSERT_TRUE(sz.is_ok());
  EXPECT_EQ(sz.value(), s_.model.size()) << "punch_hole keeps the size";
}

// After writes and punches the extents still cover every non-zero byte.
TEST_P(WritableFileContract, DataExtentsFollowWrites) {
  std::mt19937_64 rng(15);
  for (int i = 0; i < 40; i++) {
    auto [off, len] = aligned_range(rng, 16384);
    if (i % 2) {
      ASSERT_OBD_OK(s_.file->punch_hole(off, len));
      std::fill_n(s_.model.begin() + off, len, 0);
    } else {
      auto bytes = test::random_bytes(rng, len);
      ASSERT_OBD_OK(s_.file->pwrite(bytes.data(), len, off));
      std::copy(bytes.begin(), bytes.end(), s_.model.begin() + off);
    }
  }
  ASSERT_OBD_OK(s_.file->sync());
  auto ex = s_.file->data_extents(0);
  ASSERT_TRUE(ex.is_ok()) << ex.status().to_string();
  std::vector<bool> covered(s_.model.size(), false);
  for (const Extent& e : ex.value())
    for (uint64_t x = e.off; x < std::min<uint64_t>(e.off + e.len, covered.size()); x++) covered[x] = true;
  for (size_t x = 0; x < s_.model.size(); x++)
    if (s_.model[x] != 0 && !covered[x]) FAIL() << "non-zero byte at " << x << " outside every extent";
}

std::string subject_name(const testing::TestParamInfo<Maker>& p) { return p.param.name; }
INSTANTIATE_TEST_SUITE_P(Writable, FileContract, testing::ValuesIn(kWritable), subject_name);
INSTANTIATE_TEST_SUITE_P(ReadOnly, FileContract, testing::ValuesIn(kReadOnly), subject_name);
INSTANTIATE_TEST_SUITE_P(Writable, WritableFileContract, testing::ValuesIn(kWritable), subject_name);
INSTANTIATE_TEST_SUITE_P(ReadOnly, ReadOnlyFileContract, testing::ValuesIn(kReadOnly), subject_name);

}  // namespace
