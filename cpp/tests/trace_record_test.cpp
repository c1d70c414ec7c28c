// Trace record and replay: reads through wrapped layer files are recorded
// until <trace>.lock goes away or finish(); the trace then loads for replay,
// and replay reads exactly the recorded ranges from the layers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <map>
#include <random>
#include <thread>

#include "image/stack.h"
#include "layer/blob.h"
#include "lsmt/ro_layer.h"
#include "tests/counting_file.h"
#include "tests/test_util.h"
#include "trace/plan.h"
#include "trace/prefetch.h"
#include "trace/recorder.h"

using namespace obd;
using namespace std::chrono_literals;
using obd::trace::Record;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

// Waits up to 5 s for `p` to appear.
bool wait_for(const std::string& p) {
  for (int i = 0; i < 500 && !exists(p); i++) std::this_thread::sleep_for(10ms);
  return exists(p);
}

std::string empty_trace(const test::TempDir& dir) {
  std::string p = dir.file("trace");
  std::ofstream{p};
  return p;
}

using Reads = std::vector<std::pair<uint64_t, uint64_t>>;

// The ≤ 1 MiB pieces replay must read for `recs` from layer `layer`, sorted.
Reads pieces_of(const std::vector<Record>& recs, uint32_t layer) {
  Reads v;
  for (const Record& r : recs) {
    if (r.op != 'R' || r.layer != layer || r.offset < 0) continue;
    for (uint64_t done = 0; done < r.count; done += trace::kMaxPiece)
      v.emplace_back(r.offset + done, std::min<uint64_t>(trace::kMaxPiece, r.count - done));
  }
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST(TraceRecord, DeletingTheLockEndsRecording) {
  test::TempDir dir;
  std::string path = empty_trace(dir);
  std::mt19937_64 rng(3);
  auto d0 = test::random_bytes(rng, 65536), d1 = test::random_bytes(rng, 40000);
  FilePtr f0 = make_memory_file("layer0", d0), f1 = make_memory_file("layer1", d1);

  ASSERT_OBD_ASSIGN(auto rec, trace::Recorder::start(path, 5ms));
  EXPECT_TRUE(exists(path + ".lock"));
  EXPECT_TRUE(rec->recording());
  FilePtr w0 = rec->wrap(0, f0), w1 = rec->wrap(1, f1);
  EXPECT_EQ(w1->size().value(), 40000u);

  std::vector<uint8_t> buf(8192);
  ASSERT_OBD_ASSIGN(size_t n, w0->pread(buf.data(), 4096, 0));
  EXPECT_EQ(n, 4096u);
  EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + 4096, d0.begin()));
  ASSERT_OBD_ASSIGN(n, w1->pread(buf.data(), 100, 5000));
  EXPECT_TRUE(std::equal(buf.begin(), buf.begin() + 100, d1.begin() + 5000));
  ASSERT_OBD_ASSIGN(n, w1->pread(buf.data(), 100, 39990));  // short at the end: 10 bytes read
  EXPECT_EQ(n, 10u);
  ASSERT_OBD_ASSIGN(n, w1->pread(buf.data(), 100, 40000));  // nothing read: nothing recorded
  EXPECT_EQ(n, 0u);
  std::vector<uint8_t> b2(512);
  ReadReq reqs[2] = {{buf.data(), 512, 1024}, {b2.data(), 512, 60000}};
  ASSERT_OBD_OK(w0->pread_batch(reqs));
  EXPECT_TRUE(std::equal(b2.begin(), b2.end(), d0.begin() + 60000));

  ASSERT_EQ(::unlink((path + ".lock").c_str()), 0);
  ASSERT_TRUE(wait_for(path + ".ok"));
  EXPECT_FALSE(rec->recording());
  ASSERT_OBD_ASSIGN(n, w0->pread(buf.data(), 512, 0));  // after the end: not recorded

  ASSERT_OBD_ASSIGN(auto plan, trace::load(path));
  EXPECT_EQ(plan.mode, trace::Mode::kReplay);
  std::vector<Record> want = {
      {'R', 0, 4096, 0}, {'R', 1, 100, 5000}, {'R', 1, 10, 39990}, {'R', 0, 512, 1024}, {'R', 0, 512, 60000}};
  EXPECT_EQ(plan.records, want);
  ASSERT_OBD_OK(rec->finish());  // already finished by the watcher: same result, file unchanged
  ASSERT_OBD_ASSIGN(auto again, trace::load(path));
  EXPECT_EQ(again.records, want);
  EXPECT_FALSE(exists(path + ".lock"));
}

TEST(TraceRecord, FinishAndDestructorWriteTheTrace) {
  test::TempDir dir;
  std::string path = empty_trace(dir);
  std::ofstream{path + ".ok"};  // stale, from an earlier recording
  FilePtr f = make_memory_file("layer", std::vector<uint8_t>(8192, 7));
  std::vector<uint8_t> buf(4096);
  {
    ASSERT_OBD_ASSIGN(auto rec, trace::Recorder::start(path, 1h));
    EXPECT_FALSE(exists(path + ".ok"));
    FilePtr w = rec->wrap(3, f);
    ASSERT_TRUE(w->pread(buf.data(), 4096, 4096).is_ok());
    ASSERT_OBD_OK(rec->finish());
    EXPECT_TRUE(exists(path + ".ok"));
    EXPECT_FALSE(exists(path + ".lock"));
    ASSERT_TRUE(w->pread(buf.data(), 4096, 0).is_ok());  // not recorded
    ASSERT_OBD_OK(rec->finish());
  }
  ASSERT_OBD_ASSIGN(auto plan, trace::load(path));
  EXPECT_EQ(plan.records, (std::vector<Record>{{'R', 3, 4096, 4096}}));

  // Without finish(): the last reference (here a wrapped file) writes it.
  std::string p2 = dir.file("trace2");
  std::ofstream{p2};
  FilePtr w;
  {
    ASSERT_OBD_ASSIGN(auto rec, trace::Recorder::start(p2, 1h));
    w = rec->wrap(0, f);
  }
  ASSERT_TRUE(w->pread(buf.data(), 100, 1).is_ok());
  EXPECT_FALSE(exists(p2 + ".ok"));
  w.reset();
  EXPECT_TRUE(exists(p2 + ".ok"));
  ASSERT_OBD_ASSIGN(auto plan2, trace::load(p2));
  EXPECT_EQ(plan2.records, (std::vector<Record>{{'R', 0, 100, 1}}));
}

TEST(TraceRecord, ConcurrentReadersWhileTheLockGoes) {
  test::TempDir dir;
  std::string path = empty_trace(dir);
  FilePtr f = make_memory_file("layer", std::vector<uint8_t>(1 << 20, 1));
  ASSERT_OBD_ASSIGN(auto rec, trace::Recorder::start(path, 1ms));
  FilePtr w = rec->wrap(2, f);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++)
    threads.emplace_back([&, t] {
      std::vector<uint8_t> buf(512);
      for (uint64_t i = 0; !stop; i++) {
        if (w->pread(buf.data(), 512, ((i * 4 + t) % 2048) * 512).is_ok()) reads++;
      }
    });
  std::this_thread::sleep_for(20ms);
  ASSERT_EQ(::unlink((path + ".lock").c_str()), 0);
  bool ok = wait_for(path + ".ok");
  stop = true;
  for (auto& t : threads) t.join();
  ASSERT_TRUE(ok);
  ASSERT_OBD_ASSIGN(auto plan, trace::load(path));
  EXPECT_GT(plan.records.size(), 0u);
  EXPECT_LT(plan.records.size(), reads.load());  // reads went on after the end
  for (const Record& r : plan.records) {
    ASSERT_EQ(r.layer, 2u);
    ASSERT_EQ(r.count, 512u);
    ASSERT_EQ(r.offset % 512, 0);
    ASSERT_LT(r.offset, 1 << 20);
  }
}

TEST(TraceRecord, StartFailsCleanly) {
  test::TempDir dir;
  auto r = trace::Recorder::start(dir.file("no/such/dir/trace"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kENOENT) << r.status().to_string();
}

// A real stack over two committed lowers (one a ZFile), each LSMT file
// wrapped; every read of the image lands in the trace, and replaying the
// trace onto the unwrapped LSMT files reads exactly what was recorded.
TEST(TraceRecord, StackReadsRecordAndReplayExactly) {
  test::TempDir dir;
  std::string path = empty_trace(dir);
  std::mt19937_64 rng(11);
  const size_t kSize = 4 << 20;
  std::vector<uint8_t> c0 = test::random_bytes(rng, kSize), c1(kSize, 0);
  for (size_t off = 0; off < kSize; off += 3 * 65536) std::fill_n(c1.begin() + off, 65536, uint8_t(off / 65536 + 1));
  ASSERT_OBD_OK(test::make_lower(dir.file("l0"), c0));
  ASSERT_OBD_OK(test::make_lower(dir.file("l1"), c1, 1));

  std::vector<FilePtr> contents;
  for (const char* name : {"l0", "l1"}) {
    ASSERT_OBD_ASSIGN(FilePtr blob, open_local(dir.file(name), OpenMode::kRead));
    ASSERT_OBD_ASSIGN(auto opened, layer::open_blob(blob));
    contents.push_back(opened.content);
  }
  std::vector<uint8_t> image_bytes;
  {
    ASSERT_OBD_ASSIGN(auto rec, trace::Recorder::start(path, 1h));
    std::vector<lsmt::RoLayerPtr> lowers;
    for (uint32_t i = 0; i < contents.size(); i++) {
      ASSERT_OBD_ASSIGN(auto l, lsmt::open_ro_layer(rec->wrap(i, contents[i])));
      lowers.push_back(l);
    }
    ASSERT_OBD_ASSIGN(auto img, StackImage::create(lowers, nullptr, "img"));
    image_bytes.resize(kSize);
    for (size_t off = 0; off < kSize; off += 256 << 10)
      ASSERT_TRUE(img->pread(image_bytes.data() + off, 256 << 10, off).is_ok());
    ASSERT_OBD_OK(rec->finish());
  }
  // The top layer's mapped blocks win; c0 shows elsewhere.
  for (size_t off = 0; off < kSize; off += 65536) {
    const auto& want = (off / 65536) % 3 == 0 ? c1 : c0;
    ASSERT_TRUE(std::equal(want.begin() + off, want.begin() + off + 65536, image_bytes.begin() + off)) << off;
  }
  ASSERT_OBD_ASSIGN(auto plan, trace::load(path));
  ASSERT_EQ(plan.mode, trace::Mode::kReplay);
  uint64_t total = 0;
  std::map<uint32_t, int> per_layer;
  for (const Record& r : plan.records) {
    EXPECT_EQ(r.op, 'R');
    ASSERT_LT(r.layer, 2u);
    per_layer[r.layer]++;
    total += r.count;
  }
  EXPECT_GT(per_layer[0], 0);
  EXPECT_GT(per_layer[1], 0);

  std::vector<std::shared_ptr<test::CountingFile>> counting;
  std::vector<FilePtr> layers;
  for (auto& c : contents) {
    counting.push_back(std::make_shared<test::CountingFile>(c));
    layers.push_back(counting.back());
  }
  trace::PrefetchStats st = trace::replay(plan.records, layers, 4);
  EXPECT_EQ(st.errors, 0u);
  EXPECT_EQ(st.bytes, total);
  for (uint32_t i = 0; i < 2; i++) EXPECT_EQ(counting[i]->reads(), pieces_of(plan.records, i)) << "layer " << i;
}

TEST(TraceReplay, ReadsExactlyTheRecordedRanges) {
  std::mt19937_64 rng(5);
  std::vector<std::shared_ptr<test::CountingFile>> counting;
  std::vector<FilePtr> layers;
  for (int i = 0; i < 3; i++) {
    counting.push_back(std::make_shared<test::CountingFile>(
        make_memory_file("layer" + std::to_string(i), test::random_bytes(rng, 4 << 20))));
    layers.push_back(counting.back());
  }
  layers.push_back(nullptr);  // a layer that is not there (say, removed)
  std::vector<Record> recs = {
      {'R', 0, 4096, 0},
      {'R', 1, (5 << 19), 100},       // 2.5 MiB: three pieces
      {'R', 2, 512, 1 << 20},
      {'W', 2, 4096, 0},             // writes are not replayed
      {'R', 7, 4096, 0},             // no layer 7: error
      {'R', 3, 4096, 0},             // null layer: error
      {'R', 0, 4096, -4096},         // negative offset: error
      {'R', 0, 8192, (4 << 20) - 4096},  // runs past the end: short read, error
      {'R', 2, 0, 0},                // empty: nothing to read
  };
  for (int i = 0; i < 200; i++) recs.push_back({'R', uint32_t(i % 3), 1 + rng() % 70000, int64_t(rng() % (3 << 20))});
  trace::PrefetchStats st = trace::replay(recs, layers, 4);
  uint64_t want_bytes = 0, want_reads = 0;
  for (uint32_t i = 0; i < 3; i++) {
    Reads want = pieces_of(recs, i);
    EXPECT_EQ(counting[i]->reads(), want) << "layer " << i;
    for (auto& [off, len] : want) {
      want_bytes += std::min<uint64_t>(len, (4 << 20) - off);
      want_reads++;
    }
  }
  EXPECT_EQ(st.errors, 4u);
  EXPECT_EQ(st.reads, want_reads - 1);
  EXPECT_EQ(st.bytes, want_bytes);
}

TEST(TraceReplay, StopsWhenCancelled) {
  auto counting = std::make_shared<test::CountingFile>(make_memory_file("layer", std::vector<uint8_t>(1 << 20)));
  std::vector<Record> recs(1000, Record{'R', 0, 4096, 0});
  std::atomic<bool> cancel{true};
  trace::PrefetchStats st = trace::replay(recs, {counting}, 4, &cancel);
  EXPECT_EQ(st.reads, 0u);
  EXPECT_TRUE(counting->reads().empty());
}
