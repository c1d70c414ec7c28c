// Background download (cpp/download, format spec §6.3): the switchable
// layer file under concurrent readers, and the Downloader against memory
// sources wrapped to count, record or fail their reads, writing real files.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <thread>

#include "download/downloader.h"
#include "download/job.h"
#include "download/sha256.h"
#include "download/token_bucket.h"
#include "tests/test_util.h"

using namespace obd;
using namespace obd::download;
using namespace std::chrono_literals;

namespace {

bool exists(const std::string& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0;
}

std::string digest_of(const std::vector<uint8_t>& bytes) {
  auto d = sha256_digest(*make_memory_file("bytes", bytes), 1 << 20);
  return d.is_ok() ? d.value() : "";
}

// A source over memory that records every read and can fail some: reads
// numbered in `fail_reads` (from 1), or all of them with `fail_all`.
class TestSource final : public File {
 public:
  explicit TestSource(std::vector<uint8_t> bytes) : inner_(make_memory_file("src", std::move(bytes))) {}
  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    std::lock_guard lock(mu_);
    calls++;
    if (fail_all || std::find(fail_reads.begin(), fail_reads.end(), calls) != fail_reads.end())
      return Status(Code::kEAGAIN, name_ + ": injected failure of read " + std::to_string(calls));
    ranges.push_back({off, len});
    bytes_read += len;
    return inner_->pread(buf, len, off);
  }

  std::mutex mu_;
  std::vector<int> fail_reads;
  bool fail_all = false;
  int calls = 0;
  uint64_t bytes_read = 0;
  std::vector<Extent> ranges;

 private:
  FilePtr inner_;
  std::string name_ = "https://registry.test/v2/x/blobs/sha256:test";
};

class Recorder final : public DownloadObserver {
 public:
  void on_download(const DownloadEvent& e) override {
    std::lock_guard lock(mu);
    events.push_back({e.layer, e.state, e.done_bytes, e.total_bytes, e.message ? *e.message : ""});
  }
  struct Ev {
    uint32_t layer;
    DownloadState state;
    uint64_t done, total;
    std::string message;
  };
  std::mutex mu;
  std::vector<Ev> events;
};

std::vector<uint8_t> read_all(File& f) {
  auto sz = f.size();
  if (!sz.is_ok()) return {};
  std::vector<uint8_t> v(sz.value());
  auto n = f.pread(v.data(), v.size(), 0);
  if (!n.is_ok()) return {};
  v.resize(n.value());
  return v;
}

DownloadOptions fast_options() {
  DownloadOptions o;
  o.delay_s = 0;
  o.delay_extra_s = 0;
  o.max_mbps = 0;
  o.try_cnt = 3;
  o.block_size = 65536;
  o.engine = IoEngine::kPsync;
  o.retry_pause_ms = 10;
  return o;
}

class DownloadTest : public testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(21);
    blob_ = test::random_bytes(rng, (3 << 20) + 1234);  // the last block is partial
    source_ = std::make_shared<TestSource>(blob_);
    target_ = std::make_shared<SwitchableFile>(source_, "layer0");
  }
  DownloadJob job(std::string digest = "") {
    return {0, digest.empty() ? digest_of(blob_) : digest, blob_.size(), dir_.path(), source_, target_};
  }
  std::string commit() const { return dir_.file("overlaybd.commit"); }
  std::string partial() const { return dir_.file(".download"); }
  // Runs one job to its end and returns its state.
  DownloadState run(DownloadJob j, DownloadOptions o = fast_options()) {
    auto d = Downloader::start(o, {std::move(j)}, recorder_);
    EXPECT_TRUE(d->wait_for(60s));
    return d->states().at(0);
  }
  std::string last_message() {
    std::lock_guard lock(recorder_->mu);
    return recorder_->events.empty() ? "" : recorder_->events.back().message;
  }

  test::TempDir dir_;
  std::vector<uint8_t> blob_;
  std::shared_ptr<TestSource> source_;
  std::shared_ptr<SwitchableFile> target_;
  std::shared_ptr<Recorder> recorder_ = std::make_shared<Recorder>();
};

TEST_F(DownloadTest, CompletesVerifiesRenamesAndSwitches) {
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_TRUE(exists(commit()));
  EXPECT_FALSE(exists(partial()));
  EXPECT_TRUE(target_->switched());
  EXPECT_EQ(target_->current()->name(), commit());
  EXPECT_EQ(source_->bytes_read, blob_.size());
  EXPECT_EQ(read_all(*target_), blob_);
  ASSERT_OBD_ASSIGN(FilePtr local, open_local(commit(), OpenMode::kRead));
  EXPECT_EQ(read_all(*local), blob_);

  // Progress events climb to the total; the last event is kDone.
  std::lock_guard lock(recorder_->mu);
  auto& ev = recorder_->events;
  ASSERT_GE(ev.size(), 3u);
  uint64_t prev = 0;
  for (auto& e : ev) {
    EXPECT_EQ(e.total, blob_.size());
    EXPECT_GE(e.done, prev);
    prev = e.done;
  }
  EXPECT_EQ(ev.back().state, DownloadState::kDone);
  EXPECT_EQ(ev.back().done, blob_.size());
}

// Source reads are several blocks long, block-aligned, and cover the blob once.
TEST_F(DownloadTest, FetchesInLargeAlignedRequests) {
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  const uint64_t bs = fast_options().block_size;
  uint64_t next = 0;
  for (const Extent& r : source_->ranges) {
    EXPECT_EQ(r.off, next);
    EXPECT_EQ(r.off % bs, 0u);
    EXPECT_LE(r.len, fetch_bytes(fast_options()));
    next = r.off + r.len;
  }
  EXPECT_EQ(next, blob_.size());
  EXPECT_LT(source_->ranges.size(), blob_.size() / bs / 4) << "requests should span many blocks";
}

// An earlier run left some blocks (and half of one) in .download: only the
// missing blocks are read from the source.
TEST_F(DownloadTest, ResumesFromPartialDownload) {
  const uint64_t bs = fast_options().block_size, nblocks = (blob_.size() + bs - 1) / bs;
  uint64_t kept = 0;
  {
    ASSERT_OBD_ASSIGN(FilePtr f, open_local(partial(), OpenMode::kCreateExclusive));
    ASSERT_OBD_OK(f->truncate(blob_.size()));
    for (uint64_t b : {0ul, 1ul, 2ul, 7ul, 20ul, nblocks - 1}) {
      uint64_t len = std::min(bs, blob_.size() - b * bs);
      ASSERT_OBD_OK(f->pwrite(blob_.data() + b * bs, len, b * bs));
      kept += len;
    }
    ASSERT_OBD_OK(f->pwrite(blob_.data() + 10 * bs, bs / 2, 10 * bs));  // a write cut short
  }
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_EQ(source_->bytes_read, blob_.size() - kept);
  for (const Extent& r : source_->ranges) {
    for (uint64_t b : {0ul, 1ul, 2ul, 7ul, 20ul, nblocks - 1})
      EXPECT_TRUE(r.off + r.len <= b * bs || r.off >= (b + 1) * bs) << "read block " << b << " again";
  }
  EXPECT_TRUE(target_->switched());
  EXPECT_EQ(read_all(*target_), blob_);
}

TEST_F(DownloadTest, DigestMismatchFailsAndKeepsReadingRemotely) {
  std::vector<uint8_t> other = blob_;
  other[12345] ^= 1;
  std::string wrong = digest_of(other);
  ASSERT_EQ(run(job(wrong)), DownloadState::kFailed);
  EXPECT_EQ(last_message().rfind("digest mismatch: expected " + wrong + ", got " + digest_of(blob_), 0), 0u)
      << last_message();
  EXPECT_FALSE(exists(commit()));
  EXPECT_FALSE(exists(partial()));
  EXPECT_FALSE(target_->switched());
  EXPECT_EQ(target_->current(), source_);
  EXPECT_EQ(source_->bytes_read, blob_.size()) << "a fresh download with a wrong digest is not retried";
}

// A mismatch after resuming may come from stale blocks: fetch everything once more.
TEST_F(DownloadTest, DigestMismatchAfterResumeRefetches) {
  {
    ASSERT_OBD_ASSIGN(FilePtr f, open_local(partial(), OpenMode::kCreateExclusive));
    std::vector<uint8_t> stale(65536, 0xAB);
    ASSERT_OBD_OK(f->pwrite(stale.data(), stale.size(), 0));
  }
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_EQ(source_->bytes_read, 2 * blob_.size() - 65536);
  EXPECT_EQ(read_all(*target_), blob_);
}

TEST_F(DownloadTest, RetriesAFailingSource) {
  source_->fail_reads = {2, 3};  // the second read of attempt 1, the first of attempt 2
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_EQ(source_->bytes_read, blob_.size()) << "attempts resume where the last one stopped";
  EXPECT_EQ(read_all(*target_), blob_);
}

TEST_F(DownloadTest, FailsAfterTryCnt) {
  source_->fail_all = true;
  ASSERT_EQ(run(job()), DownloadState::kFailed);
  EXPECT_EQ(source_->calls, 3);
  EXPECT_NE(last_message().find("injected failure"), std::string::npos) << last_message();
  EXPECT_NE(last_message().find("attempt 3 of 3"), std::string::npos) << last_message();
  EXPECT_FALSE(exists(commit()));
  EXPECT_FALSE(target_->switched());
}

TEST_F(DownloadTest, ExistingCommitSwitchesWithoutReading) {
  {
    ASSERT_OBD_ASSIGN(FilePtr f, open_local(commit(), OpenMode::kCreateExclusive));
    ASSERT_OBD_OK(f->pwrite(blob_.data(), blob_.size(), 0));
  }
  source_->fail_all = true;
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_EQ(source_->calls, 0);
  EXPECT_TRUE(target_->switched());
  EXPECT_EQ(read_all(*target_), blob_);
}

// A file of another size at overlaybd.commit is not the blob: never switch to it.
TEST_F(DownloadTest, ExistingCommitOfWrongSizeIsRefused) {
  {
    ASSERT_OBD_ASSIGN(FilePtr f, open_local(commit(), OpenMode::kCreateExclusive));
    ASSERT_OBD_OK(f->pwrite(blob_.data(), 4096, 0));
  }
  ASSERT_EQ(run(job()), DownloadState::kFailed);
  EXPECT_NE(last_message().find("not switching"), std::string::npos) << last_message();
  EXPECT_FALSE(target_->switched());
}

TEST_F(DownloadTest, StopDuringDelayReturnsPromptly) {
  DownloadOptions o = fast_options();
  o.delay_s = 300;
  auto d = Downloader::start(o, {job()}, recorder_);
  auto t0 = std::chrono::steady_clock::now();
  d->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
  EXPECT_TRUE(d->wait_for(0ms));
  EXPECT_EQ(d->states().at(0), DownloadState::kCancelled);
  EXPECT_EQ(source_->calls, 0);
  EXPECT_FALSE(exists(partial()));
}

// Stopped mid-download (throttled to 1 MiB/s), the partial file stays and a
// new Downloader finishes it without fetching the kept blocks again.
TEST_F(DownloadTest, StopMidDownloadThenResume) {
  DownloadOptions o = fast_options();
  o.max_mbps = 1;
  {
    auto d = Downloader::start(o, {job()}, recorder_);
    for (int i = 0; i < 500; i++) {
      {
        std::lock_guard lock(source_->mu_);
        if (source_->bytes_read > 0) break;
      }
      std::this_thread::sleep_for(10ms);
    }
    auto t0 = std::chrono::steady_clock::now();
    d->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    EXPECT_EQ(d->states().at(0), DownloadState::kCancelled);
  }
  uint64_t first = source_->bytes_read;
  ASSERT_GT(first, 0u);
  ASSERT_LT(first, blob_.size());
  EXPECT_TRUE(exists(partial()));
  EXPECT_FALSE(exists(commit()));
  EXPECT_FALSE(target_->switched());
  ASSERT_EQ(run(job()), DownloadState::kDone) << last_message();
  EXPECT_EQ(source_->bytes_read, blob_.size());
  EXPECT_EQ(read_all(*target_), blob_);
}

TEST_F(DownloadTest, PauseHoldsTheDownload) {
  DownloadOptions o = fast_options();
  o.delay_s = 1;
  auto d = Downloader::start(o, {job()}, recorder_);
  d->pause(true);
  EXPECT_FALSE(d->wait_for(1500ms));
  EXPECT_EQ(source_->calls, 0);
  d->pause(false);
  ASSERT_TRUE(d->wait_for(60s));
  EXPECT_EQ(d->states().at(0), DownloadState::kDone);
}

// Jobs run in order; a failing one does not keep the next from finishing.
TEST_F(DownloadTest, RunsJobsInOrder) {
  test::TempDir dir2;
  std::mt19937_64 rng(22);
  auto blob2 = test::random_bytes(rng, 100000);
  auto src2 = std::make_shared<TestSource>(blob2);
  auto target2 = std::make_shared<SwitchableFile>(src2, "layer1");
  source_->fail_all = true;
  std::vector<DownloadJob> jobs = {job(), {1, digest_of(blob2), blob2.size(), dir2.path(), src2, target2}};
  auto d = Downloader::start(fast_options(), jobs, recorder_);
  ASSERT_TRUE(d->wait_for(60s));
  EXPECT_EQ(d->states(), (std::vector<DownloadState>{DownloadState::kFailed, DownloadState::kDone}));
  EXPECT_EQ(read_all(*target2), blob2);
  std::lock_guard lock(recorder_->mu);
  EXPECT_EQ(recorder_->events.back().layer, 1u);
}

// The token bucket's arithmetic: the wait pays the debt at the rate, the
// time spent fetching counts, and idle time earns at most one second.
TEST(DownloadTokenBucket, PacesToTheRate) {
  auto t0 = TokenBucket::Clock::now();
  TokenBucket b(1000, t0);
  EXPECT_EQ(b.take(500, t0), 500ms);
  EXPECT_EQ(b.take(500, t0 + 500ms), 500ms);
  EXPECT_EQ(b.take(1000, t0 + 2s), 0ms) << "1 s of work while waiting earned 1000";
  EXPECT_EQ(b.take(1500, t0 + 12s), 500ms) << "10 s idle earn only 1 s";
  TokenBucket unlimited(0, t0);
  EXPECT_EQ(unlimited.take(uint64_t(1) << 40, t0), 0ms);
}

TEST(DownloadTokenBucket, FetchSizeFollowsTheRate) {
  DownloadOptions o;
  o.block_size = 262144;
  o.max_mbps = 100;
  EXPECT_EQ(fetch_bytes(o), 4u << 20);
  o.max_mbps = 1;
  EXPECT_EQ(fetch_bytes(o), 1u << 20);
  o.block_size = 8 << 20;
  EXPECT_EQ(fetch_bytes(o), 8u << 20) << "at least one block";
}

// Lenient end to end: 2 MiB at 4 MiB/s cannot finish in much under 0.5 s.
TEST_F(DownloadTest, RateLimitSlowsTheDownload) {
  blob_.resize(2 << 20);
  source_ = std::make_shared<TestSource>(blob_);
  DownloadOptions o = fast_options();
  o.max_mbps = 4;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_EQ(run(job(), o), DownloadState::kDone) << last_message();
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 400ms);
}

// 4 readers loop over a layer while it switches back and forth between two
// files with the same bytes: every read succeeds with the right bytes.
TEST(DownloadSwitchable, ReadersNeverFailAcrossSwitches) {
  test::TempDir dir;
  std::mt19937_64 rng(23);
  auto bytes = test::random_bytes(rng, 1 << 20);
  FilePtr mem = make_memory_file("remote", bytes);
  {
    ASSERT_OBD_ASSIGN(FilePtr f, open_local(dir.file("local"), OpenMode::kCreateExclusive));
    ASSERT_OBD_OK(f->pwrite(bytes.data(), bytes.size(), 0));
  }
  auto sw = std::make_shared<SwitchableFile>(mem, "layer");
  EXPECT_FALSE(sw->switched());
  std::atomic<bool> done{false};
  std::atomic<int> bad{0};
  std::atomic<uint64_t> reads{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; t++) {
    readers.emplace_back([&, t] {
      std::mt19937_64 r(100 + t);
      std::vector<uint8_t> buf(70000);
      std::vector<ReadReq> reqs(2);
      while (!done.load()) {
        uint64_t off = r() % bytes.size();
        size_t len = 1 + r() % buf.size(), want = std::min<uint64_t>(len, bytes.size() - off);
        auto n = sw->pread(buf.data(), len, off);
        if (!n.is_ok() || n.value() != want || std::memcmp(buf.data(), bytes.data() + off, want) != 0) bad++;
        reqs[0] = {buf.data(), 4096, off};
        reqs[1] = {buf.data() + 4096, 4096, bytes.size() - 4096};
        if (!sw->pread_batch(reqs) || std::memcmp(buf.data() + 4096, bytes.data() + bytes.size() - 4096, 4096))
          bad++;
        reads++;
      }
    });
  }
  for (int i = 0; i < 2000; i++) {
    // Each switch opens a fresh local file, so the old one closes under readers.
    auto local = open_local(dir.file("local"), OpenMode::kRead, i % 2 ? IoEngine::kIoUring : IoEngine::kPsync);
    ASSERT_TRUE(local.is_ok());
    sw->switch_to(i % 3 == 2 ? mem : local.value());
    if (i % 100 == 0) std::this_thread::sleep_for(1ms);
  }
  done = true;
  for (auto& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(reads.load(), 0u);
  EXPECT_TRUE(sw->switched());
  EXPECT_EQ(sw->name(), "layer");
  auto sz = sw->size();
  ASSERT_TRUE(sz.is_ok());
  EXPECT_EQ(sz.value(), bytes.size());
}

}  // namespace
