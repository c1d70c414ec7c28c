// Live snapshot of a stack (§6.6) while 4 threads write and one reads:
// a write acknowledged before the snapshot began is in the sealed layer, a
// write begun after it returned is not, and the new stack (lowers + sealed
// layer + new upper) reads exactly what the live image read. A refused
// snapshot leaves the image writable and unchanged.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "image/image.h"
#include "lsmt/rw_layer.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr uint64_t kBlocks = 64;
constexpr uint64_t kWriters = 4;

void stamp(uint8_t* p, uint64_t seq, uint64_t block) {
  uint64_t v = seq << 20 | block;
  for (size_t k = 0; k < 4096; k += 8) std::memcpy(p + k, &v, 8);
}

// The seq of a stamped block, 0 for a block still holding the lower's bytes
// (0x5a), -1 for anything else (torn or foreign).
int64_t seq_of(const uint8_t* p, uint64_t block) {
  if (p[0] == 0x5a) {
    for (size_t k = 0; k < 4096; k++)
      if (p[k] != 0x5a) return -1;
    return 0;
  }
  uint64_t v;
  std::memcpy(&v, p, 8);
  if ((v & 0xfffff) != block) return -1;
  for (size_t k = 8; k < 4096; k += 8)
    if (std::memcmp(p + k, &v, 8) != 0) return -1;
  return int64_t(v >> 20);
}

struct Layers {
  test::TempDir dir;
  std::string lower = dir.file("lower.commit");
  UpperSpec u1{dir.file("u1.data"), dir.file("u1.index")};
  UpperSpec u2{dir.file("u2.data"), dir.file("u2.index")};

  Status create(bool sparse, uint64_t u2_blocks = kBlocks) {
    OBD_TRY(test::make_lower(lower, std::vector<uint8_t>(kBlocks * 4096, 0x5a)));
    lsmt::CreateOptions co;
    co.virtual_size = kBlocks * 4096;
    co.sparse = sparse;
    OBD_TRY(lsmt::create_rw_layer(u1.data, u1.index, co));
    co.virtual_size = u2_blocks * 4096;
    return lsmt::create_rw_layer(u2.data, u2.index, co);
  }
  ImageSpec spec(std::vector<std::string> lowers, std::optional<UpperSpec> upper) const {
    ImageSpec s;
    for (auto& l : lowers) s.lowers.push_back({l});
    s.upper = std::move(upper);
    return s;
  }
};

class Snapshot : public testing::TestWithParam<bool> {};

TEST_P(Snapshot, SplitsWritesAtTheSealAndKeepsTheDeviceView) {
  const bool sparse = GetParam();
  Layers L;
  ASSERT_OBD_OK(L.create(sparse));
  ASSERT_OBD_ASSIGN(ImagePtr img, open_image(L.spec({L.lower}, L.u1)));

  // phase: 0 before snapshot(), 1 during, 2 after it returned.
  std::atomic<int> phase{0};
  std::atomic<bool> stop{false}, failed{false};
  std::atomic<uint64_t> writes{0}, torn{0};
  std::vector<int64_t> acked_before(kBlocks, 0), started_after(kBlocks, 0), last(kBlocks, 0);
  std::vector<std::thread> threads;
  for (uint64_t t = 0; t < kWriters; t++) {
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf(4096);
      for (uint64_t seq = 1; !stop && !failed; seq++) {
        uint64_t b = t + kWriters * (seq % (kBlocks / kWriters));  // writer t owns blocks b % 4 == t
        int before = phase.load();
        stamp(buf.data(), seq, b);
        if (!img->pwrite(buf.data(), 4096, b * 4096).is_ok()) failed = true;
        if (phase.load() == 0) acked_before[b] = int64_t(seq);
        if (before == 2 && started_after[b] == 0) started_after[b] = int64_t(seq);
        last[b] = int64_t(seq);
        if (seq % 7 == 0 && !img->sync().is_ok()) failed = true;
        writes++;
      }
    });
  }
  threads.emplace_back([&] {
    std::vector<uint8_t> buf(4096);
    std::mt19937_64 rng(1);
    while (!stop && !failed) {
      uint64_t b = rng() % kBlocks;
      if (!img->pread(buf.data(), 4096, b * 4096).is_ok()) failed = true;
      if (!sparse && seq_of(buf.data(), b) < 0) torn++;  // sparse overwrites in place
    }
  });
  while (writes < 400 && !failed) std::this_thread::yield();
  phase = 1;
  Status snap = img->snapshot(L.u2);
  phase = 2;
  uint64_t at = writes;
  while (writes < at + 400 && !failed) std::this_thread::yield();
  stop = true;
  for (auto& th : threads) th.join();
  ASSERT_OBD_OK(snap);
  ASSERT_FALSE(failed) << "I/O failed around the snapshot";
  EXPECT_EQ(torn.load(), 0u);

  std::vector<uint8_t> live(kBlocks * 4096), buf(kBlocks * 4096);
  ASSERT_OBD_OK(img->pread(live.data(), live.size(), 0).status());
  img.reset();
  ASSERT_OBD_ASSIGN(ImagePtr next, open_image(L.spec({L.lower, L.u1.data}, L.u2)));
  ASSERT_OBD_OK(next->pread(buf.data(), buf.size(), 0).status());
  EXPECT_EQ(buf, live) << "the new config reads other bytes than the live device";
  for (uint64_t b = 0; b < kBlocks; b++) EXPECT_EQ(seq_of(&live[b * 4096], b), last[b]) << "block " << b;
  next.reset();

  ASSERT_OBD_ASSIGN(ImagePtr sealed, open_image(L.spec({L.lower, L.u1.data}, std::nullopt)));
  ASSERT_OBD_OK(sealed->pread(buf.data(), buf.size(), 0).status());
  for (uint64_t b = 0; b < kBlocks; b++) {
    int64_t s = seq_of(&buf[b * 4096], b);
    EXPECT_GE(s, acked_before[b]) << "block " << b << ": a write acknowledged before the snapshot is missing";
    if (started_after[b]) EXPECT_LT(s, started_after[b]) << "block " << b << ": a later write is in the sealed layer";
  }
}

INSTANTIATE_TEST_SUITE_P(Upper, Snapshot, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "Sparse" : "Append"; });

TEST(SnapshotRefused, LeavesTheImageWorking) {
  Layers L;
  ASSERT_OBD_OK(L.create(false, kBlocks * 2));
  ASSERT_OBD_ASSIGN(ImagePtr img, open_image(L.spec({L.lower}, L.u1)));
  std::vector<uint8_t> a(4096, 1), b(4096);
  ASSERT_OBD_OK(img->pwrite(a.data(), 4096, 0));

  Status missing = img->snapshot({L.dir.file("nope.data"), L.dir.file("nope.index")});
  EXPECT_EQ(missing.code(), Code::kENOENT) << missing.to_string();
  Status size = img->snapshot(L.u2);  // twice the device size
  EXPECT_EQ(size.code(), Code::kEINVAL) << size.to_string();
  EXPECT_NE(size.message().find("virtual size"), std::string::npos) << size.to_string();
  Status busy = img->snapshot(L.u1);  // the upper itself, locked by the image
  EXPECT_EQ(busy.code(), Code::kEBUSY) << busy.to_string();

  ASSERT_OBD_OK(img->pwrite(a.data(), 4096, 4096));
  ASSERT_OBD_OK(img->pread(b.data(), 4096, 4096).status());
  EXPECT_EQ(a, b);
  ASSERT_OBD_OK(img->sync());

  ASSERT_OBD_ASSIGN(ImagePtr ro, open_image(L.spec({L.lower}, std::nullopt)));
  Status rofs = ro->snapshot(L.u2);
  EXPECT_EQ(rofs.code(), Code::kEROFS) << rofs.to_string();
}

}  // namespace

namespace {

// overlaybd-resize's layer half (§6.7): both headers carry the new size, a
// sparse data file follows it, and data cut off by a shrink stays gone when
// the layer grows again.
class Resize : public testing::TestWithParam<bool> {};

TEST_P(Resize, RewritesBothHeadersAndForgetsWhatAShrinkCut) {
  const bool sparse = GetParam();
  test::TempDir dir;
  UpperSpec u{dir.file("r.data"), dir.file("r.index")};
  lsmt::CreateOptions co;
  co.virtual_size = 1 << 20;
  co.sparse = sparse;
  ASSERT_OBD_OK(lsmt::create_rw_layer(u.data, u.index, co));
  ImageSpec spec;
  spec.upper = u;
  std::vector<uint8_t> a(4096, 0xa1), z(4096, 0), b(4096);
  {
    ASSERT_OBD_ASSIGN(ImagePtr img, open_image(spec));
    ASSERT_OBD_OK(img->pwrite(a.data(), 4096, 0));
    ASSERT_OBD_OK(img->pwrite(a.data(), 4096, (1 << 20) - 4096));
  }
  auto resize = [&](uint64_t vsize) -> Status {
    OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(u.data, u.index, true));
    OBD_TRY(rw->set_virtual_size(vsize));
    return rw->sync();
  };
  auto header_vsize = [](const std::string& path) -> uint64_t {
    auto f = open_local(path, OpenMode::kRead);
    uint8_t rec[lsmt::kHeaderSize];
    if (!f || !(*f)->read_exact(rec, sizeof rec, 0, Code::kLSMT_TRUNCATED, "header").is_ok()) return 0;
    auto r = lsmt::decode_record(rec, path);
    return r ? r->virtual_size : 0;
  };
  ASSERT_OBD_OK(resize(512 << 10));
  EXPECT_EQ(header_vsize(u.data), 512u << 10);
  if (!sparse) EXPECT_EQ(header_vsize(u.index), 512u << 10);
  if (sparse) EXPECT_EQ(std::filesystem::file_size(u.data), 4096u + (512 << 10));
  ASSERT_OBD_OK(resize(2 << 20));
  EXPECT_EQ(header_vsize(u.data), 2u << 20);
  if (!sparse) EXPECT_EQ(header_vsize(u.index), 2u << 20);
  ASSERT_OBD_ASSIGN(ImagePtr img, open_image(spec));
  EXPECT_EQ(img->virtual_size(), 2u << 20);
  ASSERT_OBD_OK(img->pread(b.data(), 4096, 0).status());
  EXPECT_EQ(b, a);
  ASSERT_OBD_OK(img->pread(b.data(), 4096, (1 << 20) - 4096).status());
  EXPECT_EQ(b, z) << "data cut by the shrink came back";
  EXPECT_EQ(resize(4 << 20).code(), Code::kEBUSY) << "resized under an open image";
  img.reset();
  EXPECT_EQ(resize(1000).code(), Code::kEINVAL);
}

INSTANTIATE_TEST_SUITE_P(Upper, Resize, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& i) { return i.param ? "Sparse" : "Append"; });

}  // namespace
