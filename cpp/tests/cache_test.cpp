// The remote blob cache (cpp/cache): refill units, restarts, single flight,
// eviction, and faults (read-only or full directory, a cut cache file, bad
// cached bytes under a ZFile). Sources are real in-memory Files that count
// their reads; cache directories are real directories (and tmpfs mounts).
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "cache/cache.h"
#include "download/switchable_file.h"
#include "io/file.h"
#include "tests/test_util.h"
#include "zfile/layout.h"
#include "zfile/reader.h"
#include "zfile/writer.h"

using namespace obd;
using namespace obd::cache;

namespace {

const std::string kKey = "sha256:0123456789abcdef";
constexpr uint32_t kUnit = 65536;

// A blob source over memory bytes: counts reads and read bytes; can fail
// every read with a fixed error, or hold reads until opened.
class CountingSource final : public File {
 public:
  explicit CountingSource(std::vector<uint8_t> bytes) : inner_(make_memory_file("registry-blob", std::move(bytes))) {}
  const std::string& name() const override { return inner_->name(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    reads++;
    {
      std::unique_lock<std::mutex> g(m_);
      cv_.wait(g, [&] { return open_; });
    }
    if (fail_ != Code::kOK) return Status(fail_, "registry said no at offset " + std::to_string(off));
    auto r = inner_->pread(buf, len, off);
    if (r) bytes += *r;
    return r;
  }
  Status pread_batch(std::span<ReadReq> reqs) override {
    batches++;
    return File::pread_batch(reqs);
  }
  void fail_with(Code c) { fail_ = c; }
  void hold() {
    std::lock_guard<std::mutex> g(m_);
    open_ = false;
  }
  void release() {
    std::lock_guard<std::mutex> g(m_);
    open_ = true;
    cv_.notify_all();
  }

  std::atomic<uint64_t> reads{0}, batches{0}, bytes{0};

 private:
  FilePtr inner_;
  std::atomic<Code> fail_{Code::kOK};
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = true;
};

class Recorder final : public CacheObserver {
 public:
  void on_cache(const CacheEvent& e) override {
    std::lock_guard<std::mutex> g(m_);
    events_.push_back({e.kind, *e.key, e.offset, e.length});
  }
  size_t count(CacheEventKind k) {
    std::lock_guard<std::mutex> g(m_);
    return std::count_if(events_.begin(), events_.end(), [&](const Ev& e) { return e.kind == k; });
  }

 private:
  struct Ev {
    CacheEventKind kind;
    std::string key;
    uint64_t off, len;
  };
  std::mutex m_;
  std::vector<Ev> events_;
};

uint64_t allocated(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
}
bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

class Cache : public testing::Test {
 public:
  CacheOptions options(uint64_t capacity = 1ull << 30) {
    CacheOptions o;
    o.dir = dir_.file("cache");
    o.capacity = capacity;
    o.refill_size = kUnit;
    o.evict_interval_ms = 0;  // passes run when a test says so
    o.min_free_bytes = 0;
    return o;
  }
  std::shared_ptr<CacheStore> store(CacheOptions o) {
    auto s = CacheStore::open(std::move(o), recorder_);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? s.value() : nullptr;
  }
  std::vector<uint8_t> blob(size_t n, uint64_t seed = 1) {
    std::mt19937_64 rng(seed);
    return test::random_bytes(rng, n);
  }
  // Reads [off, off+len) through `f` and checks it against `model`.
  void expect_bytes(File& f, const std::vector<uint8_t>& model, uint64_t off, size_t len) {
    std::vector<uint8_t> got(len, 0xee);
    auto n = f.pread(got.data(), len, off);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    size_t want = off >= model.size() ? 0 : std::min<uint64_t>(len, model.size() - off);
    ASSERT_EQ(n.value(), want);
    ASSERT_TRUE(std::equal(got.begin(), got.begin() + want, model.begin() + off)) << "bytes at " << off;
  }

  test::TempDir dir_;
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
};

TEST_F(Cache, MissThenHit) {
  auto model = blob(1 << 20);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  expect_bytes(*f, model, 70000, 100);
  EXPECT_EQ(src->reads, 1u);
  EXPECT_EQ(src->bytes, kUnit) << "one refill unit";
  EXPECT_EQ(st->stats().misses, 1u);
  EXPECT_EQ(st->stats().hits, 0u);
  expect_bytes(*f, model, 70100, 1000);
  expect_bytes(*f, model, kUnit, kUnit);
  EXPECT_EQ(src->reads, 1u) << "the same unit is read locally";
  EXPECT_EQ(st->stats().hits, 2u);
  EXPECT_EQ(st->stats().fetched_bytes, kUnit);
  EXPECT_EQ(recorder_->count(CacheEventKind::kMiss), 1u);
  EXPECT_EQ(recorder_->count(CacheEventKind::kHit), 2u);
}

TEST_F(Cache, RefillRoundsOutAndClipsAtBlobEnd) {
  const size_t size = 5 * kUnit + 1234;
  auto model = blob(size);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  // Crosses units 1 and 2: one source read of both.
  expect_bytes(*f, model, 2 * kUnit - 10, 20);
  EXPECT_EQ(src->reads, 1u);
  EXPECT_EQ(src->bytes, 2 * kUnit);
  // The last unit is cut at the blob's end; reads past it return nothing.
  expect_bytes(*f, model, size - 5, 100);
  EXPECT_EQ(src->reads, 2u);
  EXPECT_EQ(src->bytes, 2 * kUnit + 1234);
  expect_bytes(*f, model, size, 10);
  expect_bytes(*f, model, size + 100000, 10);
  EXPECT_EQ(src->reads, 2u);
  ASSERT_OBD_ASSIGN(uint64_t sz, f->size());
  EXPECT_EQ(sz, size);
  expect_bytes(*f, model, 0, size + 10);
  EXPECT_EQ(src->bytes, size) << "every byte fetched once";
}

TEST_F(Cache, RestartReadsWarmCacheWithoutSource) {
  auto model = blob(3 * kUnit + 99);
  {
    auto st = store(options());
    ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, std::make_shared<CountingSource>(model)));
    expect_bytes(*f, model, 0, model.size());
  }
  EXPECT_TRUE(exists(dir_.file("cache/" + kKey + ".map")));
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  expect_bytes(*f, model, 0, model.size());
  EXPECT_EQ(src->reads, 0u);
  EXPECT_EQ(st->stats().hits, 4u);
}

// Allocated bytes without a map are not trusted: after a crash that lost the
// map (or never wrote it), the blob is fetched again.
TEST_F(Cache, DataWithoutMapIsRefetched) {
  auto model = blob(2 * kUnit);
  {
    auto st = store(options());
    ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, std::make_shared<CountingSource>(model)));
    expect_bytes(*f, model, 0, model.size());
  }
  ASSERT_EQ(::unlink(dir_.file("cache/" + kKey + ".map").c_str()), 0);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  expect_bytes(*f, model, 0, model.size());
  EXPECT_EQ(src->bytes, model.size());
}

TEST_F(Cache, ConcurrentMissesFetchOnce) {
  auto model = blob(4 * kUnit);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  src->hold();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int i = 0; i < 16; i++) {
    threads.emplace_back([&, i] {
      std::vector<uint8_t> got(1000);
      uint64_t off = kUnit + 3000 * i;
      auto n = f->pread(got.data(), got.size(), off);
      if (!n || n.value() != got.size() || !std::equal(got.begin(), got.end(), model.begin() + off)) bad++;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  src->release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(src->reads, 1u) << "one fetch however many readers wanted the unit";
  EXPECT_EQ(st->stats().misses, 1u);
}

TEST_F(Cache, WaitersShareTheFetchError) {
  auto model = blob(4 * kUnit);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  src->fail_with(Code::kETIMEDOUT);
  src->hold();
  const int kThreads = 8;
  std::vector<std::thread> threads;
  std::atomic<int> timed_out{0};
  for (int i = 0; i < kThreads; i++) {
    threads.emplace_back([&] {
      uint8_t b[10];
      auto n = f->pread(b, sizeof b, 5);
      if (!n && n.status().code() == Code::kETIMEDOUT) timed_out++;
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  src->release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(timed_out, kThreads);
  EXPECT_LT(src->reads, uint64_t(kThreads)) << "waiters got the flight's error";
  // The failed unit is not cached: the next read tries again.
  src->fail_with(Code::kOK);
  expect_bytes(*f, model, 0, 100);
}

TEST_F(Cache, SourceErrorKeepsCodeAndMessageAddsKey) {
  auto src = std::make_shared<CountingSource>(blob(kUnit));
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  src->fail_with(Code::kEAGAIN);
  uint8_t b[10];
  auto n = f->pread(b, sizeof b, 100);
  ASSERT_FALSE(n.is_ok());
  EXPECT_EQ(n.status().code(), Code::kEAGAIN);
  EXPECT_NE(n.status().message().find("registry said no at offset 0"), std::string::npos) << n.status().message();
  EXPECT_NE(n.status().message().find(kKey), std::string::npos) << n.status().message();
}

TEST_F(Cache, PreadBatchGroupsMisses) {
  auto model = blob(20 * kUnit);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  expect_bytes(*f, model, 5 * kUnit, 10);  // unit 5 present
  src->reads = 0;
  src->batches = 0;
  // Units 1-2 (two requests), 4-6 (5 present), 10, and one past the end.
  std::vector<std::pair<uint64_t, size_t>> ranges = {{kUnit + 5, 100},       {2 * kUnit + 7, 50},
                                                     {4 * kUnit, 3 * kUnit}, {10 * kUnit + 1, 10},
                                                     {kUnit + 50, 20},        {20 * kUnit + 5, 10}};
  std::vector<std::vector<uint8_t>> bufs;
  std::vector<ReadReq> reqs;
  for (auto [off, len] : ranges) bufs.emplace_back(len, 0xee);
  for (size_t i = 0; i < ranges.size(); i++) reqs.push_back({bufs[i].data(), ranges[i].second, ranges[i].first});
  ASSERT_OBD_OK(f->pread_batch(reqs));
  for (size_t i = 0; i < ranges.size(); i++) {
    auto [off, len] = ranges[i];
    size_t want = off >= model.size() ? 0 : std::min<uint64_t>(len, model.size() - off);
    ASSERT_EQ(reqs[i].done, want) << i;
    EXPECT_TRUE(std::equal(bufs[i].begin(), bufs[i].begin() + want, model.begin() + off)) << i;
  }
  EXPECT_EQ(src->batches, 1u) << "all misses in one source batch";
  EXPECT_EQ(src->reads, 4u) << "runs 1-2, 4, 6, 10";
  ASSERT_OBD_OK(f->pread_batch(reqs));
  EXPECT_EQ(src->batches, 1u) << "all present now";
}

TEST(CacheMarks, FollowTheSpec) {
  const uint64_t G = 1ull << 30;
  Marks m = marks_for(10 * G);
  EXPECT_EQ(m.water, 9 * G);
  EXPECT_EQ(m.risk, 9 * G + G / 2);
  m = marks_for(1024 * G);
  EXPECT_EQ(m.water, 974 * G);
  EXPECT_EQ(m.risk, 1019 * G);
  m = marks_for(1000);
  EXPECT_EQ(m.water, 900u);
  EXPECT_EQ(m.risk, 950u);
}

TEST_F(Cache, RejectsBadOptionsAndKeys) {
  auto o = options();
  o.refill_size = 3 * 4096;
  auto s = CacheStore::open(o);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.status().code(), Code::kEINVAL);
  EXPECT_NE(s.status().message().find("refillSize"), std::string::npos);
  o.refill_size = 2048;
  EXPECT_EQ(CacheStore::open(o).status().code(), Code::kEINVAL);
  auto st = store(options());
  for (std::string key : {"", "../etc", "sha256:ab/cd", "a.map"})
    EXPECT_EQ(st->open(key, std::make_shared<CountingSource>(blob(10))).status().code(), Code::kEINVAL) << key;
}

// Reads each blob fully and closes it, in order, so their access times
// order them for LRU.
void fill(Cache& t, const std::shared_ptr<CacheStore>& st, const std::vector<std::string>& keys,
          const std::vector<uint8_t>& model) {
  for (const auto& k : keys) {
    auto f = st->open(k, std::make_shared<CountingSource>(model));
    ASSERT_TRUE(f.is_ok());
    std::vector<uint8_t> b(model.size());
    ASSERT_TRUE(f.value()->pread(b.data(), b.size(), 0).is_ok());
  }
}

// LRU order comes from the files' times, so it survives a restart; a store
// opened over a cache above its water mark evicts at once.
TEST_F(Cache, EvictsLeastRecentlyUsedToWaterMark) {
  auto model = blob(4 * kUnit);
  std::vector<std::string> keys = {"sha256:aa", "sha256:bb", "sha256:cc", "sha256:dd"};
  {
    auto st = store(options());
    fill(*this, st, keys, model);
  }
  // bb is the oldest, then dd.
  int64_t base = ::time(nullptr) - 1000;
  int64_t ages[] = {300, 0, 400, 100};
  for (size_t i = 0; i < keys.size(); i++) {
    timespec ts[2] = {{base + ages[i], 0}, {base + ages[i], 0}};
    ASSERT_EQ(::utimensat(AT_FDCWD, dir_.file("cache/" + keys[i]).c_str(), ts, 0), 0);
  }
  uint64_t per_blob = allocated(dir_.file("cache/sha256:aa")) + allocated(dir_.file("cache/sha256:aa.map"));
  ASSERT_GE(per_blob, model.size());
  // Water mark 0.9 * capacity: room for two blobs, not three.
  auto st = store(options(uint64_t(2.5 * double(per_blob) / 0.9)));
  EXPECT_FALSE(exists(dir_.file("cache/sha256:bb")));
  EXPECT_FALSE(exists(dir_.file("cache/sha256:bb.map")));
  EXPECT_FALSE(exists(dir_.file("cache/sha256:dd")));
  EXPECT_TRUE(exists(dir_.file("cache/sha256:aa")));
  EXPECT_TRUE(exists(dir_.file("cache/sha256:cc")));
  EXPECT_EQ(st->stats().evicted_files, 2u);
  EXPECT_EQ(recorder_->count(CacheEventKind::kEvict), 2u);
  EXPECT_LE(st->stats().used_bytes, marks_for(2.5 * double(per_blob) / 0.9).water);
  ASSERT_OBD_OK(st->evict_once());
  EXPECT_EQ(st->stats().evicted_files, 2u) << "under the water mark: nothing more";
}

// Low free space on the filesystem evicts too, whatever the capacity.
TEST_F(Cache, LowFreeSpaceEvicts) {
  auto model = blob(2 * kUnit);
  auto o = options();
  o.min_free_bytes = uint64_t(1) << 62;
  {
    auto st = store(options());
    fill(*this, st, {"sha256:aa", "sha256:bb"}, model);
  }
  auto st = store(o);
  EXPECT_EQ(st->stats().evicted_files, 2u);
  EXPECT_FALSE(exists(dir_.file("cache/sha256:aa")));
  EXPECT_FALSE(exists(dir_.file("cache/sha256:bb")));
}

// Above the risk mark a read evicts before it stores more; an open blob is
// emptied, not deleted, and reads of it fetch again.
TEST_F(Cache, OpenBlobIsEmptiedNotDeleted) {
  auto model = blob(4 * kUnit);
  auto st = store(options(5 * kUnit));  // water 4.5 units, risk 4.75
  auto src_a = std::make_shared<CountingSource>(model);
  ASSERT_OBD_ASSIGN(FilePtr a, st->open("sha256:aa", src_a));
  expect_bytes(*a, model, 0, model.size());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  fill(*this, st, {"sha256:bb"}, model);
  EXPECT_GE(st->stats().evicted_files, 1u);
  std::string path = dir_.file("cache/sha256:aa");
  EXPECT_TRUE(exists(path)) << "open: emptied, not deleted";
  EXPECT_EQ(allocated(path), 0u);
  struct stat sb;
  ASSERT_EQ(::stat(path.c_str(), &sb), 0);
  EXPECT_EQ(uint64_t(sb.st_size), model.size());
  uint64_t before = src_a->bytes;
  expect_bytes(*a, model, 0, model.size());
  EXPECT_EQ(src_a->bytes, before + model.size()) << "emptied units are fetched again";
}

// The store serves reads from the source when it cannot write its directory.
void expect_pass_through(Cache& t, const std::shared_ptr<CacheStore>& st, Recorder& rec) {
  auto model = t.blob(3 * kUnit + 17);
  auto src = std::make_shared<CountingSource>(model);
  ASSERT_TRUE(st);
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  t.expect_bytes(*f, model, 0, model.size());
  t.expect_bytes(*f, model, 100, 1000);
  EXPECT_GE(rec.count(CacheEventKind::kWriteFailed), 1u);
  EXPECT_EQ(st->stats().hits, 0u);
  EXPECT_GE(src->bytes, model.size() + 1000);
}

TEST_F(Cache, FileWhereTheDirectoryShouldBePassesThrough) {
  std::ofstream(dir_.file("cache")) << "not a directory";
  expect_pass_through(*this, store(options()), *recorder_);
}

// A tmpfs mounted for one test (skipped where mounts are not allowed).
class Mount {
 public:
  Mount(const std::string& dir, const char* opts) : dir_(dir) {
    ::mkdir(dir.c_str(), 0755);
    ok_ = ::mount("tmpfs", dir.c_str(), "tmpfs", 0, opts) == 0;
  }
  ~Mount() {
    if (ok_) ::umount2(dir_.c_str(), MNT_DETACH);
  }
  bool ok() const { return ok_; }
  Status remount_read_only() {
    if (::mount(nullptr, dir_.c_str(), nullptr, MS_REMOUNT | MS_RDONLY, nullptr) != 0)
      return Status::from_errno(errno, "remount " + dir_);
    return Status::ok();
  }

 private:
  std::string dir_;
  bool ok_ = false;
};

TEST_F(Cache, ReadOnlyDirectoryPassesThrough) {
  Mount m(dir_.file("cache"), "size=4m");
  if (!m.ok()) GTEST_SKIP() << "cannot mount a tmpfs here";
  ASSERT_OBD_OK(m.remount_read_only());
  expect_pass_through(*this, store(options()), *recorder_);
}

TEST_F(Cache, FullDirectoryPassesThrough) {
  Mount m(dir_.file("cache"), "size=128k");
  if (!m.ok()) GTEST_SKIP() << "cannot mount a tmpfs here";
  auto model = blob(40 * kUnit + 5);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  for (uint64_t off = 0; off < model.size(); off += kUnit) expect_bytes(*f, model, off, kUnit);
  expect_bytes(*f, model, 0, model.size());
  EXPECT_GE(recorder_->count(CacheEventKind::kWriteFailed), 1u);
  EXPECT_GT(st->stats().hits, 0u) << "what fit is still served locally";
}

TEST_F(Cache, CutCacheFileIsRefetched) {
  auto model = blob(8 * kUnit);
  auto src = std::make_shared<CountingSource>(model);
  auto st = store(options());
  std::string path = dir_.file("cache/" + kKey);
  {
    ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
    expect_bytes(*f, model, 0, model.size());
    ASSERT_EQ(::truncate(path.c_str(), 3 * kUnit + 100), 0);  // another process cuts it
    uint64_t before = src->bytes;
    expect_bytes(*f, model, 0, model.size());
    EXPECT_EQ(src->bytes, before + 5 * kUnit) << "units 3..7 fetched again";
    expect_bytes(*f, model, 0, model.size());
    EXPECT_EQ(src->bytes, before + 5 * kUnit);
  }
  // Cut while closed: the store notices when it opens the blob.
  ASSERT_EQ(::truncate(path.c_str(), kUnit), 0);
  uint64_t before = src->bytes;
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  expect_bytes(*f, model, 0, model.size());
  EXPECT_EQ(src->bytes, before + 7 * kUnit);
}

// A ZFile payload at offset 512 of a blob (as in a tar), read through a view.
struct ZBlob {
  std::vector<uint8_t> raw, bytes;
  uint64_t zsize = 0;
  zfile::Layout layout;
};
ZBlob make_zblob() {
  ZBlob z;
  z.raw.resize(300 * 1024);
  std::mt19937_64 rng(5);
  for (size_t i = 0; i < z.raw.size(); i++) z.raw[i] = uint8_t(i % 97 < 60 ? i / 300 : rng());
  FilePtr mem = make_memory_file("z");
  auto w = ZFileWriter::create(mem, ZFileOptions{});
  EXPECT_TRUE(w.is_ok());
  EXPECT_TRUE(w.value()->append(z.raw.data(), z.raw.size()).is_ok());
  EXPECT_TRUE(w.value()->finish().is_ok());
  z.zsize = mem->size().value();
  auto l = zfile::read_layout(*mem);
  EXPECT_TRUE(l.is_ok());
  z.layout = l.value();
  z.bytes.assign(512, 0x55);
  z.bytes.resize(512 + z.zsize);
  EXPECT_TRUE(mem->pread(z.bytes.data() + 512, z.zsize, 0).is_ok());
  return z;
}

void flip(const std::string& path, uint64_t off) {
  FILE* f = std::fopen(path.c_str(), "r+b");
  ASSERT_TRUE(f);
  std::fseek(f, long(off), SEEK_SET);
  int c = std::fgetc(f);
  std::fseek(f, long(off), SEEK_SET);
  std::fputc(c ^ 0x40, f);
  std::fclose(f);
}

TEST_F(Cache, FlippedByteUnderZFileBlockIsRefetched) {
  ZBlob z = make_zblob();
  auto src = std::make_shared<CountingSource>(z.bytes);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr cached, st->open(kKey, src));
  ASSERT_OBD_ASSIGN(FilePtr zf, open_zfile(make_view(cached, 512, z.zsize, "layer")));
  expect_bytes(*zf, z.raw, 0, z.raw.size());
  uint64_t before = src->reads;
  std::string path = dir_.file("cache/" + kKey);
  flip(path, 512 + 512 + 100);  // inside block 0's stored bytes
  expect_bytes(*zf, z.raw, 10, 5000);
  EXPECT_GT(src->reads, before) << "the bad unit was fetched again";
  EXPECT_EQ(recorder_->count(CacheEventKind::kInvalidate), 1u);

  // The batch path too: two requests, a bad block under the second.
  before = src->reads;
  flip(path, 512 + z.layout.index_offset - 100);  // inside the last block
  std::vector<uint8_t> a(100), b(100);
  std::vector<ReadReq> reqs = {{a.data(), a.size(), 0}, {b.data(), b.size(), z.raw.size() - 100}};
  ASSERT_OBD_OK(zf->pread_batch(reqs));
  EXPECT_TRUE(std::equal(a.begin(), a.end(), z.raw.begin()));
  EXPECT_TRUE(std::equal(b.begin(), b.end(), z.raw.end() - 100));
  EXPECT_GT(src->reads, before);
}

TEST_F(Cache, BadSourceBytesStillFailAfterOneRetry) {
  ZBlob z = make_zblob();
  z.bytes[512 + 512 + 100] ^= 0x40;  // the registry itself serves a bad block
  auto src = std::make_shared<CountingSource>(z.bytes);
  auto st = store(options());
  ASSERT_OBD_ASSIGN(FilePtr cached, st->open(kKey, src));
  ASSERT_OBD_ASSIGN(FilePtr zf, open_zfile(make_view(cached, 512, z.zsize, "layer")));
  std::vector<uint8_t> b(100);
  auto n = zf->pread(b.data(), b.size(), 0);
  ASSERT_FALSE(n.is_ok());
  EXPECT_EQ(n.status().code(), Code::kZFILE_CRC_MISMATCH);
  EXPECT_EQ(recorder_->count(CacheEventKind::kInvalidate), 1u) << "retried once";
}

TEST_F(Cache, CorruptJumpTableInCacheIsRefetched) {
  ZBlob z = make_zblob();
  auto src = std::make_shared<CountingSource>(z.bytes);
  auto st = store(options());
  {
    ASSERT_OBD_ASSIGN(FilePtr cached, st->open(kKey, src));
    ASSERT_OBD_ASSIGN(FilePtr zf, open_zfile(make_view(cached, 512, z.zsize, "layer")));
    expect_bytes(*zf, z.raw, 0, z.raw.size());
  }
  flip(dir_.file("cache/" + kKey), 512 + z.layout.index_offset + 9);
  uint64_t before = src->reads;
  ASSERT_OBD_ASSIGN(FilePtr cached, st->open(kKey, src));
  ASSERT_OBD_ASSIGN(FilePtr zf, open_zfile(make_view(cached, 512, z.zsize, "layer")));
  EXPECT_GT(src->reads, before);
  EXPECT_GE(recorder_->count(CacheEventKind::kInvalidate), 1u);
  expect_bytes(*zf, z.raw, 0, z.raw.size());
}

// Views pass invalidate through, shifted and clipped, as does the
// download's switchable file; files without a cache refuse it.
TEST(CacheInvalidate, ViewsShiftAndClip) {
  class Recording final : public File {
   public:
    const std::string& name() const override { return name_; }
    Result<uint64_t> size() override { return uint64_t(1000); }
    Result<size_t> pread(void*, size_t, uint64_t) override { return size_t(0); }
    Status invalidate(uint64_t off, uint64_t len) override {
      got = {off, len};
      return Status::ok();
    }
    Extent got{0, 0};
    std::string name_ = "rec";
  };
  auto rec = std::make_shared<Recording>();
  FilePtr v = make_view(rec, 100, 500, "v");
  ASSERT_OBD_OK(v->invalidate(450, 200));
  EXPECT_EQ(rec->got.off, 550u);
  EXPECT_EQ(rec->got.len, 50u);
  ASSERT_OBD_OK(make_shifted(rec, 7)->invalidate(3, 4));
  EXPECT_EQ(rec->got.off, 10u);
  download::SwitchableFile sw(rec, "layer");  // a remote layer the download may switch
  ASSERT_OBD_OK(sw.invalidate(5, 6));
  EXPECT_EQ(rec->got.off, 5u);
  EXPECT_EQ(make_memory_file("m")->invalidate(0, 1).code(), Code::kENOTSUP);
}

// 8 threads of random reads and batches against the model, with a capacity
// small enough that evictions (risk mark and timer) and invalidations run
// under them.
TEST_F(Cache, StressRandomReadsMatchModel) {
  const size_t size = 48 * kUnit + 777;
  auto model = blob(size, 9);
  auto src = std::make_shared<CountingSource>(model);
  auto o = options(24 * kUnit);
  o.evict_interval_ms = 5;
  auto st = store(o);
  ASSERT_OBD_ASSIGN(FilePtr f, st->open(kKey, src));
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      std::vector<uint8_t> buf, buf2;
      for (int i = 0; i < 400 && failures == 0; i++) {
        uint64_t off = rng() % (size + 1000);
        size_t len = 1 + rng() % (3 * kUnit);
        size_t want = off >= size ? 0 : std::min<uint64_t>(len, size - off);
        buf.assign(len, 0xee);
        if (i % 5 == 0) {
          uint64_t off2 = rng() % size;
          size_t len2 = 1 + rng() % kUnit;
          size_t want2 = std::min<uint64_t>(len2, size - off2);
          buf2.assign(len2, 0xee);
          std::vector<ReadReq> reqs = {{buf.data(), len, off}, {buf2.data(), len2, off2}};
          Status s = f->pread_batch(reqs);
          if (!s || reqs[0].done != want || reqs[1].done != want2 ||
              !std::equal(buf.begin(), buf.begin() + want, model.begin() + std::min<uint64_t>(off, size)) ||
              !std::equal(buf2.begin(), buf2.begin() + want2, model.begin() + off2))
            failures++;
        } else {
          auto n = f->pread(buf.data(), len, off);
          if (!n || n.value() != want ||
              !std::equal(buf.begin(), buf.begin() + want, model.begin() + std::min<uint64_t>(off, size)))
            failures++;
        }
        if (i % 101 == 0) (void)f->invalidate(rng() % size, 1 + rng() % kUnit);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures, 0);
  EXPECT_GT(st->stats().hits, 0u);
  EXPECT_GT(st->stats().evicted_files, 0u);
}

}  // namespace
