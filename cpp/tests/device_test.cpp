// The BlockDevice adapter over real images: per-queue submit and reap from
// several threads against a flat model, completions once each on the queue's
// thread, write-zeroes over lowers, argument errors, queue ids and close.
#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "device/image_device.h"
#include "lsmt/rw_layer.h"
#include "tests/test_util.h"

using namespace obd;

namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Completion target for the tests: counts runs and records the last status.
struct Tracker {
  std::atomic<int> runs{0};
  Status last;
  std::thread::id thread;
};

void track(IoRequest& req, const Status& s) {
  auto* t = static_cast<Tracker*>(req.ctx);
  t->runs++;
  t->last = s;
  t->thread = std::this_thread::get_id();
}

Status run_one(IoQueue& q, IoRequest& req) {
  Tracker t;
  req.ctx = &t;
  req.done = track;
  q.submit(req);
  while (t.runs == 0) q.reap(1);
  return t.runs == 1 ? t.last : Status(Code::kINTERNAL, "completion ran more than once");
}

class DeviceTest : public testing::Test {
 protected:
  // An image with `lower` (empty: none) under a fresh writable upper, in `d`.
  ImagePtr open(bool sparse, const std::vector<uint8_t>& lower, uint64_t vsize, const test::TempDir* d = nullptr) {
    const test::TempDir& dir = d ? *d : dir_;
    ImageSpec spec;
    if (!lower.empty()) {
      std::string path = dir.file("lower.lsmt");
      Status s = test::make_lower(path, lower);
      EXPECT_TRUE(s.is_ok()) << s.to_string();
      spec.lowers.push_back({path});
    }
    lsmt::CreateOptions co;
    co.virtual_size = vsize;
    co.sparse = sparse;
    spec.upper = UpperSpec{dir.file("upper.data"), sparse ? "" : dir.file("upper.index")};
    Status s = lsmt::create_rw_layer(spec.upper->data, dir.file("upper.index"), co);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    spec_ = spec;
    auto img = open_image(spec);
    EXPECT_TRUE(img.is_ok()) << img.status().to_string();
    return img.is_ok() ? img.value() : nullptr;
  }

  test::TempDir dir_;
  ImageSpec spec_;
};

// Four queue threads, 2000 requests each (reads, multi-buffer writes,
// discards) on disjoint regions; the device must read back the model, also
// after close and reopen.
TEST_F(DeviceTest, QueuesFromFourThreadsMatchModel) {
  const uint64_t kSize = 32 * kMiB;
  auto dev = make_image_device(open(false, {}, kSize));
  std::vector<uint8_t> model(kSize, 0);
  std::atomic<int> completions{0}, failures{0};
  const int kThreads = 4, kOps = 2000;
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&, t] {
      auto q = dev->open_queue(t, {.workers = 2, .max_io_bytes = 8192});
      if (!q) {
        failures++;
        return;
      }
      std::mt19937_64 rng(t + 1);
      uint64_t base = kSize / kThreads * t, span = kSize / kThreads;
      for (int i = 0; i < kOps; i++) {
        uint64_t len = 512 * (1 + rng() % 64), off = base + 512 * (rng() % ((span - len) / 512));
        int kind = int(rng() % 4);
        std::vector<uint8_t> buf(len);
        // Up to three buffers, the middle cut not sector aligned.
        size_t cut1 = 512 * (rng() % (len / 512 + 1)), cut2 = cut1 + (len - cut1) / 2;
        std::vector<iovec> iov;
        for (auto [a, b] : {std::pair{size_t(0), cut1}, {cut1, cut2}, {cut2, size_t(len)}})
          if (b > a) iov.push_back({buf.data() + a, b - a});
        IoRequest req{.op = kind == 0 ? IoOp::kRead : kind == 3 ? IoOp::kDiscard : IoOp::kWrite,
                      .offset = off, .length = len, .iov = iov.data(), .iovcnt = uint32_t(iov.size())};
        if (req.op == IoOp::kWrite) {
          for (auto& b : buf) b = uint8_t(rng());
          std::memcpy(model.data() + off, buf.data(), len);
        } else if (req.op == IoOp::kDiscard) {
          req.iov = nullptr;
          req.iovcnt = 0;
          std::memset(model.data() + off, 0, len);
        }
        Status s = run_one(**q, req);
        completions++;
        if (!s) failures++;
        if (req.op == IoOp::kRead && std::memcmp(buf.data(), model.data() + off, len) != 0) failures++;
      }
      IoRequest flush{.op = IoOp::kFlush};
      if (!run_one(**q, flush)) failures++;
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(completions.load(), kThreads * kOps);
  dev.reset();
  auto img = open_image(spec_);
  ASSERT_TRUE(img.is_ok()) << img.status().to_string();
  std::vector<uint8_t> back(kSize);
  auto got = img.value()->pread(back.data(), kSize, 0);
  ASSERT_TRUE(got.is_ok());
  EXPECT_TRUE(back == model);
}

// Many requests in flight on one queue: each completes once, on the thread
// that reaps, and the completion eventfd wakes a poll loop.
TEST_F(DeviceTest, PipelinedCompletionsRunOnReapingThread) {
  const uint64_t kSize = 8 * kMiB;
  auto dev = make_image_device(open(false, {}, kSize));
  auto q = dev->open_queue(0, {.workers = 3});
  ASSERT_TRUE(q.is_ok());
  const int kDepth = 32;
  std::vector<std::vector<uint8_t>> bufs(kDepth, std::vector<uint8_t>(4096));
  std::vector<iovec> iovs(kDepth);
  std::vector<IoRequest> reqs(kDepth);
  std::vector<Tracker> trackers(kDepth);
  for (int i = 0; i < kDepth; i++) {
    std::memset(bufs[i].data(), i + 1, 4096);
    iovs[i] = {bufs[i].data(), 4096};
    reqs[i] = {.op = IoOp::kWrite, .offset = uint64_t(i) * 4096, .length = 4096, .iov = &iovs[i], .iovcnt = 1,
               .done = track, .ctx = &trackers[i]};
    (*q)->submit(reqs[i]);
  }
  EXPECT_EQ((*q)->in_flight(), size_t(kDepth));
  size_t reaped = 0;
  while (reaped < kDepth) {
    pollfd p{(*q)->completion_fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 10000), 1);
    reaped += (*q)->reap(0);
  }
  EXPECT_EQ((*q)->in_flight(), 0u);
  for (int i = 0; i < kDepth; i++) {
    EXPECT_EQ(trackers[i].runs.load(), 1);
    EXPECT_TRUE(trackers[i].last.is_ok()) << trackers[i].last.to_string();
    EXPECT_EQ(trackers[i].thread, std::this_thread::get_id());
  }
  std::vector<uint8_t> got(4096);
  for (int i = 0; i < kDepth; i += 7) {
    iovec v{got.data(), got.size()};
    IoRequest rd{.op = IoOp::kRead, .offset = uint64_t(i) * 4096, .length = 4096, .iov = &v, .iovcnt = 1};
    ASSERT_OBD_OK(run_one(**q, rd));
    EXPECT_EQ(got, bufs[i]);
  }
}

// The queue thread's submit and reap allocate nothing per request.
TEST_F(DeviceTest, SubmitAndReapDoNotAllocate) {
  auto dev = make_image_device(open(false, std::vector<uint8_t>(2 * kMiB, 7), 2 * kMiB));
  auto q = dev->open_queue(0, {.workers = 2});
  ASSERT_TRUE(q.is_ok());
  const int kDepth = 16;
  std::vector<uint8_t> bufs(kDepth * 4096);
  std::vector<iovec> iovs(kDepth);
  std::vector<IoRequest> reqs(kDepth);
  static std::atomic<int> done{0};
  auto count = [](IoRequest&, const Status& s) {
    if (s) done++;
  };
  for (int i = 0; i < kDepth; i++) {
    iovs[i] = {bufs.data() + i * 4096, 4096};
    reqs[i] = {.op = IoOp::kRead, .offset = uint64_t(i) * 8192, .length = 4096, .iov = &iovs[i], .iovcnt = 1,
               .done = count};
  }
  for (auto& r : reqs) (*q)->submit(r);  // warm up
  (*q)->reap(kDepth);
  uint64_t before = test::thread_allocations();
  for (int round = 0; round < 50; round++) {
    for (auto& r : reqs) (*q)->submit(r);
    (*q)->reap(kDepth);
  }
  uint64_t allocs = test::thread_allocations() - before;
  EXPECT_EQ(allocs, 0u);
  EXPECT_EQ(done.load(), 51 * kDepth);
  EXPECT_EQ(bufs, std::vector<uint8_t>(bufs.size(), 7));
}

// Write-zeroes reads as zeros over a lower's data, whatever the upper: an
// append upper logs zeroed entries; a sparse upper must store zeros, as a
// hole in it would show the lower again.
TEST_F(DeviceTest, WriteZeroesHidesLowerData) {
  for (bool sparse : {false, true}) {
    for (bool unmap : {false, true}) {
      SCOPED_TRACE(testing::Message() << "sparse " << sparse << " may_unmap " << unmap);
      test::TempDir sub;
      std::mt19937_64 rng(3);
      auto lower = test::random_bytes(rng, 1 * kMiB);
      auto dev = make_image_device(open(sparse, lower, 1 * kMiB, &sub));
      ASSERT_TRUE(dev->io_type_supported(IoOp::kWriteZeroes));
      auto q = dev->open_queue(0, {.workers = 0});
      ASSERT_TRUE(q.is_ok());
      IoRequest wz{.op = IoOp::kWriteZeroes, .may_unmap = unmap, .offset = 4096, .length = 12288};
      ASSERT_OBD_OK(run_one(**q, wz));
      std::vector<uint8_t> got(1 * kMiB);
      iovec v{got.data(), got.size()};
      IoRequest rd{.op = IoOp::kRead, .offset = 0, .length = got.size(), .iov = &v, .iovcnt = 1};
      ASSERT_OBD_OK(run_one(**q, rd));
      std::memset(lower.data() + 4096, 0, 12288);
      EXPECT_TRUE(got == lower);
    }
  }
}

TEST_F(DeviceTest, BadRequestsCompleteWithErrors) {
  auto dev = make_image_device(open(false, {}, 1 * kMiB));
  auto q = dev->open_queue(0, {.workers = 1});
  ASSERT_TRUE(q.is_ok());
  std::vector<uint8_t> buf(4096);
  iovec v{buf.data(), buf.size()};
  IoRequest unaligned{.op = IoOp::kRead, .offset = 100, .length = 4096, .iov = &v, .iovcnt = 1};
  EXPECT_EQ(run_one(**q, unaligned).code(), Code::kUNALIGNED);
  IoRequest beyond{.op = IoOp::kWrite, .offset = 1 * kMiB - 512, .length = 4096, .iov = &v, .iovcnt = 1};
  EXPECT_EQ(run_one(**q, beyond).code(), Code::kOUT_OF_RANGE);
  IoRequest short_buf{.op = IoOp::kRead, .offset = 0, .length = 8192, .iov = &v, .iovcnt = 1};
  EXPECT_EQ(run_one(**q, short_buf).code(), Code::kEINVAL);
}

TEST_F(DeviceTest, ReadOnlyImageRefusesWrites) {
  std::string path = dir_.file("ro.lsmt");
  ASSERT_OBD_OK(test::make_lower(path, std::vector<uint8_t>(1 * kMiB, 9)));
  ImageSpec spec;
  spec.lowers.push_back({path});
  auto img = open_image(spec);
  ASSERT_TRUE(img.is_ok());
  auto dev = make_image_device(img.value());
  EXPECT_TRUE(dev->read_only());
  EXPECT_TRUE(dev->io_type_supported(IoOp::kRead));
  EXPECT_FALSE(dev->io_type_supported(IoOp::kWrite));
  EXPECT_FALSE(dev->io_type_supported(IoOp::kWriteZeroes));
  auto q = dev->open_queue(0);
  ASSERT_TRUE(q.is_ok());
  std::vector<uint8_t> buf(4096);
  iovec v{buf.data(), buf.size()};
  IoRequest wr{.op = IoOp::kWrite, .offset = 0, .length = 4096, .iov = &v, .iovcnt = 1};
  EXPECT_EQ(run_one(**q, wr).code(), Code::kEROFS);
  IoRequest wz{.op = IoOp::kWriteZeroes, .offset = 0, .length = 4096};
  EXPECT_EQ(run_one(**q, wz).code(), Code::kEROFS);
}

TEST_F(DeviceTest, QueueIdsAreExclusiveAndCloseStopsRequests) {
  auto dev = make_image_device(open(false, {}, 1 * kMiB));
  auto q0 = dev->open_queue(0);
  ASSERT_TRUE(q0.is_ok());
  EXPECT_EQ((*q0)->id(), 0u);
  EXPECT_EQ(dev->open_queue(0).status().code(), Code::kEBUSY);
  {
    auto q1 = dev->open_queue(1);
    ASSERT_TRUE(q1.is_ok());
  }
  EXPECT_TRUE(dev->open_queue(1).is_ok());  // its id is free again once closed
  dev->close();
  EXPECT_EQ(dev->open_queue(2).status().code(), Code::kCLOSED);
  std::vector<uint8_t> buf(512);
  iovec v{buf.data(), buf.size()};
  IoRequest rd{.op = IoOp::kRead, .offset = 0, .length = 512, .iov = &v, .iovcnt = 1};
  EXPECT_EQ(run_one(**q0, rd).code(), Code::kCLOSED);
  dev.reset();  // the queue outlives its device
  EXPECT_EQ(run_one(**q0, rd).code(), Code::kCLOSED);
}

// Destroying a queue runs the completions of what it still holds, and a
// completion that resubmits then gets CLOSED instead of hanging.
TEST_F(DeviceTest, QueueDestructorCompletesEverything) {
  auto dev = make_image_device(open(false, {}, 1 * kMiB));
  auto q = dev->open_queue(0, {.workers = 1});
  ASSERT_TRUE(q.is_ok());
  std::vector<uint8_t> buf(8 * 4096);
  std::vector<iovec> iovs(8);
  std::vector<IoRequest> reqs(8);
  static int runs, closed;
  runs = closed = 0;
  auto again = [](IoRequest& r, const Status& s) {
    runs++;
    if (s.code() == Code::kCLOSED) {
      closed++;
      return;
    }
    static_cast<IoQueue*>(r.ctx)->submit(r);  // until the queue closes
  };
  for (int i = 0; i < 8; i++) {
    iovs[i] = {buf.data() + i * 4096, 4096};
    reqs[i] = {.op = IoOp::kRead, .offset = uint64_t(i) * 4096, .length = 4096, .iov = &iovs[i], .iovcnt = 1,
               .done = again, .ctx = q->get()};
    (*q)->submit(reqs[i]);
  }
  q->reset();
  EXPECT_EQ(closed, 8);
  EXPECT_GE(runs, 16);
}

}  // namespace

namespace {

bool readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, 0) == 1;
}

}  // namespace

// The completion fd is readable while completions of a worker's requests
// wait and clear once reaped; with signal_fd off it never is, nor for
// requests that finished inside submit(), and reap() still runs them.
TEST_F(DeviceTest, CompletionFdFollowsWaitingCompletions) {
  auto dev = make_image_device(open(false, std::vector<uint8_t>(kMiB, 3), kMiB));
  unsigned qid = 0;
  for (bool signal : {true, false})
  for (unsigned workers : {0u, 1u}) {
    auto q = dev->open_queue(qid++, {.workers = workers, .inline_reads = false, .signal_fd = signal});
    ASSERT_TRUE(q.is_ok());
    std::vector<uint8_t> buf(4 * 4096);
    iovec iov[4];
    IoRequest reqs[4];
    static int ran = 0;
    ran = 0;
    for (int i = 0; i < 4; i++) {
      iov[i] = {buf.data() + i * 4096, 4096};
      reqs[i] = {.op = IoOp::kRead, .offset = uint64_t(i) * 4096, .length = 4096, .iov = &iov[i], .iovcnt = 1,
                 .done = [](IoRequest&, const Status& s) { ran += s.is_ok(); }};
      (*q)->submit(reqs[i]);
    }
    if (workers) {
      while ((*q)->in_flight() && !readable((*q)->completion_fd()) && signal) ::poll(nullptr, 0, 1);
    }
    EXPECT_EQ(readable((*q)->completion_fd()), signal && workers) << "workers " << workers;
    EXPECT_EQ((*q)->reap(4), 4u);
    EXPECT_EQ(ran, 4);
    EXPECT_FALSE(readable((*q)->completion_fd()));
    EXPECT_EQ(buf, std::vector<uint8_t>(buf.size(), 3));
  }
}

// A completion that submits again from inside reap() may finish at once;
// that one makes the fd readable, so a poll loop does not sleep on it.
TEST_F(DeviceTest, ResubmitInsideReapSignals) {
  auto dev = make_image_device(open(false, std::vector<uint8_t>(kMiB, 5), kMiB));
  auto q = dev->open_queue(0, {.workers = 0});
  ASSERT_TRUE(q.is_ok());
  std::vector<uint8_t> buf(4096);
  iovec iov{buf.data(), buf.size()};
  struct Ctx {
    IoQueue* q;
    int runs = 0;
  } ctx{q->get()};
  IoRequest r{.op = IoOp::kRead, .offset = 0, .length = 4096, .iov = &iov, .iovcnt = 1,
              .done = [](IoRequest& req, const Status& s) {
                auto* c = static_cast<Ctx*>(req.ctx);
                if (s.is_ok() && ++c->runs == 1) c->q->submit(req);
              },
              .ctx = &ctx};
  (*q)->submit(r);
  EXPECT_FALSE(readable((*q)->completion_fd()));
  EXPECT_EQ((*q)->reap(1), 1u);
  EXPECT_EQ(ctx.runs, 1);
  EXPECT_TRUE(readable((*q)->completion_fd()));
  EXPECT_EQ((*q)->reap(0), 1u);
  EXPECT_EQ(ctx.runs, 2);
  EXPECT_EQ((*q)->in_flight(), 0u);
  EXPECT_FALSE(readable((*q)->completion_fd()));
}
