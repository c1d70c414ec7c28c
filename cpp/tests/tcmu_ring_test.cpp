// The TCMU command ring, laid out in memory with the kernel's own UAPI
// structs the way target_core_user queues commands (entry sizes, CDBs after
// the iovecs, PAD entries before a wrap, iovecs as offsets into the data
// area) and completed commands reaped the way the kernel reaps them (by the
// cmd_id found in each entry up to cmd_tail). Plus the cfgstring parser.
#include <gtest/gtest.h>

#include <poll.h>

#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "device/image_device.h"
#include "frontend/tcmu/block_io.h"
#include "frontend/tcmu/cfgstring.h"
#include "frontend/tcmu/ring.h"
#include "frontend/tcmu/ring_runner.h"
#include "frontend/tcmu/scsi_wire.h"
#include "frontend/tcmu/uapi.h"
#include "tests/scsi_cdb.h"
#include "tests/test_util.h"
#include "lsmt/rw_layer.h"

using namespace obd;
using namespace obd::frontend::tcmu;
using obd::test::cdb10;
using obd::test::cdb16;

namespace {

constexpr uint64_t kSize = 1 << 20;

// The kernel's side of one device's mapping.
class KernelRing {
 public:
  KernelRing(uint32_t cmdr_size, uint32_t data_size) : map_(128 + cmdr_size + data_size, 0), cmdr_size_(cmdr_size) {
    auto* mb = reinterpret_cast<tcmu_mailbox*>(map_.data());
    mb->version = TCMU_MAILBOX_VERSION;
    mb->flags = TCMU_MAILBOX_FLAG_CAP_OOOC | TCMU_MAILBOX_FLAG_CAP_READ_LEN;
    mb->cmdr_off = 128;
    mb->cmdr_size = cmdr_size;
  }

  uint8_t* map() { return map_.data(); }
  size_t map_len() const { return map_.size(); }
  tcmu_mailbox* mb() { return reinterpret_cast<tcmu_mailbox*>(map_.data()); }
  uint64_t data_off() const { return 128 + cmdr_size_; }
  uint8_t* data(uint64_t off) { return map_.data() + data_off() + off; }

  // Queues a command whose data is at `segs` (offsets into the data area),
  // as tcmu_queue_cmd_ring does: a PAD to the ring's end if the entry would
  // not fit, then the entry, CDB after the iovecs. Returns its cmd_id.
  uint16_t queue(const std::vector<uint8_t>& cdb, const std::vector<std::pair<uint64_t, uint64_t>>& segs) {
    size_t base = std::max(offsetof(tcmu_cmd_entry, req.iov) + segs.size() * sizeof(iovec), sizeof(tcmu_cmd_entry));
    uint32_t size = uint32_t((base + cdb.size() + 7) / 8 * 8);
    if (head_ + size > cmdr_size_) {
      pad(cmdr_size_ - head_);
    }
    auto* e = entry(head_);
    std::memset(e, 0, size);
    e->hdr.len_op = size | TCMU_OP_CMD;
    e->hdr.cmd_id = next_id_;
    e->req.iov_cnt = uint32_t(segs.size());
    auto* iov = reinterpret_cast<iovec*>(reinterpret_cast<uint8_t*>(e) + offsetof(tcmu_cmd_entry, req.iov));
    for (size_t i = 0; i < segs.size(); i++)
      iov[i] = {reinterpret_cast<void*>(data_off() + segs[i].first), segs[i].second};
    e->req.cdb_off = 128 + head_ + base;
    std::memcpy(map_.data() + e->req.cdb_off, cdb.data(), cdb.size());
    head_ = (head_ + size) % cmdr_size_;
    return next_id_++;
  }

  void pad(uint32_t len) {
    auto* e = entry(head_);
    std::memset(e, 0xa5, len);  // stale bytes past the header
    e->hdr.len_op = len | TCMU_OP_PAD;
    e->hdr.cmd_id = 0;
    head_ = (head_ + len) % cmdr_size_;
  }

  void tmr() {
    auto* e = entry(head_);
    e->hdr.len_op = 32 | TCMU_OP_TMR;
    head_ = (head_ + 32) % cmdr_size_;
  }

  void publish() { __atomic_store_n(&mb()->cmd_head, head_, __ATOMIC_RELEASE); }

  struct Done {
    uint8_t status;
    uint8_t key, asc;
    bool has_read_len;
    uint32_t read_len;
  };

  // tcmu_handle_completions: every entry from the last cleaned one up to
  // cmd_tail; PAD and TMR entries are stepped over, the others name their
  // command by cmd_id.
  std::map<uint16_t, Done> reap(std::vector<uint16_t>* order = nullptr) {
    std::map<uint16_t, Done> out;
    uint32_t tail = __atomic_load_n(&mb()->cmd_tail, __ATOMIC_ACQUIRE);
    while (cleaned_ != tail) {
      auto* e = entry(cleaned_);
      uint32_t len = hdr_len(e->hdr.len_op);
      EXPECT_GT(len, 0u);
      if (len == 0) break;
      if (hdr_op(e->hdr.len_op) == TCMU_OP_CMD) {
        Done d{e->rsp.scsi_status, uint8_t(e->rsp.sense_buffer[2] & 0x0f), uint8_t(e->rsp.sense_buffer[12]),
               bool(e->hdr.uflags & TCMU_UFLAG_READ_LEN), e->rsp.read_len};
        uint16_t id = e->hdr.cmd_id;
        EXPECT_TRUE(out.emplace(id, d).second) << "cmd_id " << id << " completed twice";
        if (order) order->push_back(id);
      }
      cleaned_ = (cleaned_ + len) % cmdr_size_;
    }
    return out;
  }

  uint32_t head() const { return head_; }

 private:
  tcmu_cmd_entry* entry(uint32_t pos) { return reinterpret_cast<tcmu_cmd_entry*>(map_.data() + 128 + pos); }

  std::vector<uint8_t> map_;
  uint32_t cmdr_size_;
  uint32_t head_ = 0;
  uint32_t cleaned_ = 0;
  uint16_t next_id_ = 1;
};

class TcmuRingTest : public testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(5);
    content_ = test::random_bytes(rng, kSize);
    ImageSpec spec;
    std::string lower = dir_.file("lower.lsmt");
    ASSERT_OBD_OK(test::make_lower(lower, content_));
    spec.lowers.push_back({lower});
    spec.upper = UpperSpec{dir_.file("upper.data"), dir_.file("upper.index")};
    lsmt::CreateOptions co;
    co.virtual_size = kSize;
    ASSERT_OBD_OK(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
    ASSERT_OBD_ASSIGN(auto img, open_image(spec));
    image_ = img;
    dev_ = make_image_device(img);
    ASSERT_OBD_ASSIGN(auto q, dev_->open_queue(0, {.workers = 0}));
    queue_ = std::move(q);
    io_ = std::make_unique<QueueIo>(*queue_);
    disk_ = disk_info(*dev_, "ring");
  }

  std::vector<uint8_t> image_bytes(uint64_t off, size_t len) {
    std::vector<uint8_t> b(len);
    EXPECT_TRUE(image_->pread(b.data(), len, off).is_ok());
    return b;
  }

  test::TempDir dir_;
  std::vector<uint8_t> content_;
  ImagePtr image_;
  std::unique_ptr<BlockDevice> dev_;
  std::unique_ptr<IoQueue> queue_;
  std::unique_ptr<QueueIo> io_;
  DiskInfo disk_;
};

// Several batches through a 1000-byte ring (entries of 128 bytes, so PADs
// and wrap-arounds come every few commands); data checked in the data area.
TEST_F(TcmuRingTest, BatchesWithPadAndWrap) {
  KernelRing k(1000, 1 << 20);
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  int notified = 0;
  auto notify = [&] { notified++; };
  std::vector<uint8_t> model = content_;
  std::mt19937_64 rng(8);
  int wraps = 0;
  for (int batch = 0; batch < 20; batch++) {
    struct Expect {
      uint16_t id;
      uint8_t status;
      uint8_t key;
      std::function<void()> check;
    };
    std::vector<Expect> want;
    int n = 1 + int(rng() % 6);
    uint64_t data = 0;
    for (int i = 0; i < n; i++) {
      uint32_t before = k.head();
      int kind = int(rng() % 6);
      uint32_t blocks = 1 + uint32_t(rng() % 16);
      uint64_t lba = rng() % (kSize / 512 - blocks);
      uint64_t bytes = blocks * 512ull;
      // Two segments, the cut inside a sector.
      uint64_t cut = rng() % bytes;
      std::vector<std::pair<uint64_t, uint64_t>> segs = {{data, cut}, {data + cut + 64, bytes - cut}};
      uint64_t a = data, b = data + cut + 64;
      data += bytes + 64;
      if (kind == 0 || kind == 1) {  // READ (10/16)
        uint16_t id = k.queue(kind ? cdb16(0x88, lba, blocks) : cdb10(0x28, uint32_t(lba), uint16_t(blocks)), segs);
        want.push_back({id, kStatusGood, 0, [&, a, b, cut, lba, bytes, expect = std::vector<uint8_t>()]() {
                          std::vector<uint8_t> got(k.data(a), k.data(a) + cut);
                          got.insert(got.end(), k.data(b), k.data(b) + (bytes - cut));
                          EXPECT_EQ(0, std::memcmp(got.data(), model.data() + lba * 512, bytes)) << "read at " << lba;
                        }});
      } else if (kind == 2) {  // WRITE (16)
        for (uint64_t j = 0; j < cut; j++) *k.data(a + j) = uint8_t(rng());
        for (uint64_t j = 0; j < bytes - cut; j++) *k.data(b + j) = uint8_t(rng());
        std::memcpy(model.data() + lba * 512, k.data(a), cut);
        std::memcpy(model.data() + lba * 512 + cut, k.data(b), bytes - cut);
        want.push_back({k.queue(cdb16(0x8a, lba, blocks), segs), kStatusGood, 0, nullptr});
      } else if (kind == 3) {  // WRITE SAME (16) with UNMAP
        std::memset(k.data(a), 0, 512);
        std::memset(model.data() + lba * 512, 0, bytes);
        want.push_back({k.queue(cdb16(0x93, lba, blocks, 0x08), {{a, 512}}), kStatusGood, 0, nullptr});
      } else if (kind == 4) {  // unsupported
        want.push_back({k.queue({0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {}), kStatusCheckCondition, 5, nullptr});
      } else {  // out of range
        want.push_back(
            {k.queue(cdb16(0x88, kSize / 512, 1), {{a, 512}}), kStatusCheckCondition, 5, nullptr});
      }
      if (k.head() < before) wraps++;
    }
    if (batch % 5 == 4) k.tmr();  // a task management entry in between: stepped over
    k.publish();
    ASSERT_OBD_ASSIGN(size_t done, process_ring(ring, disk_, *io_, notify));
    EXPECT_EQ(done, size_t(n));
    EXPECT_EQ(notified, batch + 1);
    EXPECT_EQ(ring.in_flight(), 0u);
    auto got = k.reap();
    ASSERT_EQ(got.size(), want.size());
    for (auto& w : want) {
      ASSERT_TRUE(got.count(w.id)) << "cmd " << w.id;
      EXPECT_EQ(got[w.id].status, w.status) << "cmd " << w.id;
      if (w.status == kStatusCheckCondition) {
        EXPECT_EQ(got[w.id].key, w.key);
      }
      if (w.check) w.check();
    }
    EXPECT_EQ(k.mb()->cmd_tail, k.head());
  }
  EXPECT_GE(wraps, 3);
  EXPECT_TRUE(image_bytes(0, kSize) == model);
  // Nothing new: no completion, no notification.
  ASSERT_OBD_ASSIGN(size_t none, process_ring(ring, disk_, *io_, notify));
  EXPECT_EQ(none, 0u);
  EXPECT_EQ(notified, 20);
}

// INQUIRY into a larger buffer: READ_LEN tells the kernel how much is data.
TEST_F(TcmuRingTest, ReadLenForShortDataIn) {
  KernelRing k(4096, 65536);
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  uint16_t inq = k.queue({0x12, 0, 0, 0, 255, 0}, {{0, 255}});
  uint16_t rd = k.queue(cdb10(0x28, 0, 8), {{4096, 4096}});
  k.publish();
  ASSERT_OBD_ASSIGN(size_t done, process_ring(ring, disk_, *io_, nullptr));
  EXPECT_EQ(done, 2u);
  auto got = k.reap();
  EXPECT_TRUE(got[inq].has_read_len);
  EXPECT_EQ(got[inq].read_len, 36u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(k.data(8)), 7), "LIO-ORG");
  EXPECT_FALSE(got[rd].has_read_len);
  EXPECT_EQ(0, std::memcmp(k.data(4096), content_.data(), 4096));
}

// Completions out of order go into the entries at cmd_tail under the
// completed command's id, as the kernel reads them.
TEST_F(TcmuRingTest, OutOfOrderCompletion) {
  KernelRing k(640, 65536);  // five 128-byte entries
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  std::vector<uint16_t> ids;
  for (int i = 0; i < 4; i++) ids.push_back(k.queue(cdb10(0x28, uint32_t(i), 1), {{uint64_t(i) * 512, 512}}));
  k.publish();
  std::vector<RingCommand> cmds(4);
  for (auto& c : cmds) {
    ASSERT_OBD_ASSIGN(bool got, ring.next(c));
    ASSERT_TRUE(got);
  }
  ASSERT_OBD_ASSIGN(bool more, ring.next(cmds[0]));
  EXPECT_FALSE(more);
  EXPECT_EQ(ring.in_flight(), 4u);
  // Complete the third, then the first: the kernel sees ids 3 and 1 at the first two entries.
  ScsiResult sense = check_condition(SenseKey::kMediumError, 0x11, 0);
  ring.complete(cmds[2], {});
  ring.complete(cmds[0], sense);
  std::vector<uint16_t> order;
  auto got = k.reap(&order);
  EXPECT_EQ(order, (std::vector<uint16_t>{ids[2], ids[0]}));
  EXPECT_EQ(got[ids[2]].status, kStatusGood);
  EXPECT_EQ(got[ids[0]].status, kStatusCheckCondition);
  EXPECT_EQ(got[ids[0]].key, 3);
  // The others, then a new command that wraps (PAD, then the entry at 0).
  ring.complete(cmds[3], {});
  ring.complete(cmds[1], {});
  uint16_t last = k.queue(cdb10(0x28, 9, 1), {{9 * 512, 512}});
  k.publish();
  ASSERT_OBD_ASSIGN(size_t done, process_ring(ring, disk_, *io_, nullptr));
  EXPECT_EQ(done, 1u);
  order.clear();
  got = k.reap(&order);
  EXPECT_EQ(order, (std::vector<uint16_t>{ids[3], ids[1], last}));
  EXPECT_EQ(k.mb()->cmd_tail, k.head());
}

// A handler that completed in order and died with commands fetched but not
// answered: a new Ring on the same mapping starts at cmd_tail and runs them.
TEST_F(TcmuRingTest, RestartResumesAtTail) {
  KernelRing k(1024, 65536);
  std::vector<uint16_t> ids;
  for (int i = 0; i < 3; i++) ids.push_back(k.queue(cdb10(0x28, uint32_t(i), 1), {{uint64_t(i) * 512, 512}}));
  k.publish();
  {
    ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
    RingCommand c;
    for (int i = 0; i < 3; i++) ASSERT_TRUE(ring.next(c).value());
    RingCommand first;
    ASSERT_OBD_ASSIGN(Ring peek, Ring::attach(k.map(), k.map_len()));
    ASSERT_TRUE(peek.next(first).value());
    ring.complete(first, {});
  }
  auto got = k.reap();
  EXPECT_EQ(got.size(), 1u);
  EXPECT_TRUE(got.count(ids[0]));
  ASSERT_OBD_ASSIGN(Ring again, Ring::attach(k.map(), k.map_len()));
  ids.push_back(k.queue(cdb10(0x28, 3, 1), {{3 * 512, 512}}));
  k.publish();
  ASSERT_OBD_ASSIGN(size_t done, process_ring(again, disk_, *io_, nullptr));
  EXPECT_EQ(done, 3u);
  got = k.reap();
  EXPECT_EQ(got.size(), 3u);
  for (int i = 1; i < 4; i++) {
    EXPECT_EQ(got[ids[i]].status, kStatusGood);
    EXPECT_EQ(0, std::memcmp(k.data(uint64_t(i) * 512), content_.data() + i * 512, 512));
  }
}

// Many commands through RingRunner on a queue with workers: never more than
// `depth` in flight, completions in whatever order the workers finish,
// writes (some FUA) then reads of the same blocks agree with the image, one
// notification per pump at most; a closed device fails reads as MEDIUM ERROR.
TEST_F(TcmuRingTest, RunnerKeepsManyInFlight) {
  constexpr int kCmds = 100;
  constexpr uint32_t kBlocks = 8, kBytes = kBlocks * 512;
  KernelRing k(65536, kCmds * kBytes);
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  ASSERT_OBD_ASSIGN(auto q, dev_->open_queue(1, {.workers = 4}));
  int notified = 0, pumps = 0;
  size_t max_in_flight = 0;
  RingRunner runner(ring, disk_, *q, [&] { notified++; }, 32);
  auto run_all = [&](std::map<uint16_t, KernelRing::Done>& got) {
    while (got.size() < size_t(kCmds)) {
      ASSERT_OBD_ASSIGN(size_t n, runner.pump());
      (void)n;
      pumps++;
      max_in_flight = std::max(max_in_flight, runner.in_flight());
      for (auto& [id, d] : k.reap()) got.emplace(id, d);
      pollfd p{q->completion_fd(), POLLIN, 0};
      if (got.size() < size_t(kCmds)) ::poll(&p, 1, 100);
    }
  };
  std::mt19937_64 rng(9);
  std::vector<uint8_t> pattern = test::random_bytes(rng, kCmds * kBytes);
  std::vector<uint16_t> ids;
  for (int i = 0; i < kCmds; i++) {
    std::memcpy(k.data(uint64_t(i) * kBytes), &pattern[i * kBytes], kBytes);
    auto cdb = cdb10(0x2a, uint32_t(i * kBlocks), uint16_t(kBlocks));
    if (i % 3 == 0) cdb[1] |= 0x08;  // FUA
    ids.push_back(k.queue(cdb, {{uint64_t(i) * kBytes, kBytes / 2}, {uint64_t(i) * kBytes + kBytes / 2, kBytes / 2}}));
  }
  k.publish();
  std::map<uint16_t, KernelRing::Done> got;
  run_all(got);
  for (uint16_t id : ids) EXPECT_EQ(got[id].status, kStatusGood) << "write " << id;
  EXPECT_EQ(image_bytes(0, kCmds * kBytes), pattern);
  EXPECT_LE(max_in_flight, 32u);
  EXPECT_GT(max_in_flight, 1u);

  std::memset(k.data(0), 0, kCmds * kBytes);
  ids.clear();
  for (int i = 0; i < kCmds; i++)
    ids.push_back(k.queue(cdb10(0x28, uint32_t(i * kBlocks), uint16_t(kBlocks)), {{uint64_t(i) * kBytes, kBytes}}));
  k.publish();
  got.clear();
  run_all(got);
  for (uint16_t id : ids) {
    EXPECT_EQ(got[id].status, kStatusGood) << "read " << id;
    EXPECT_EQ(got[id].read_len, kBytes);
  }
  EXPECT_EQ(0, std::memcmp(k.data(0), pattern.data(), pattern.size()));
  EXPECT_GE(notified, 1);
  EXPECT_LE(notified, pumps);
  EXPECT_EQ(k.mb()->cmd_tail, k.head());

  // A closed device: the reads complete with CHECK CONDITION, MEDIUM ERROR.
  dev_->close();
  uint16_t bad = k.queue(cdb10(0x28, 0, 1), {{0, 512}});
  k.publish();
  std::map<uint16_t, KernelRing::Done> failed;
  while (failed.empty()) {
    ASSERT_TRUE(runner.pump().is_ok());
    for (auto& [id, d] : k.reap()) failed.emplace(id, d);
    pollfd p{q->completion_fd(), POLLIN, 0};
    if (failed.empty()) ::poll(&p, 1, 100);
  }
  EXPECT_EQ(failed[bad].status, kStatusCheckCondition);
  EXPECT_EQ(failed[bad].key, 3);
  EXPECT_EQ(failed[bad].asc, 0x11);
}

// Ring::pending tells a takeover that an earlier handler left commands.
TEST_F(TcmuRingTest, PendingAfterAnEarlierHandler) {
  KernelRing k(1024, 65536);
  {
    ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
    EXPECT_FALSE(ring.pending());
  }
  k.queue(cdb10(0x28, 0, 1), {{0, 512}});
  k.publish();
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  EXPECT_TRUE(ring.pending());
  ASSERT_OBD_ASSIGN(size_t done, process_ring(ring, disk_, *io_, nullptr));
  EXPECT_EQ(done, 1u);
  EXPECT_FALSE(ring.pending());
}

// Entries that point outside the mapping complete with HARDWARE ERROR; a
// length that breaks the ring stops processing with EIO.
TEST_F(TcmuRingTest, MalformedEntries) {
  KernelRing k(4096, 65536);
  ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
  uint16_t bad_iov = k.queue(cdb10(0x28, 0, 1), {{1 << 20, 512}});
  uint16_t good = k.queue(cdb10(0x28, 0, 1), {{0, 512}});
  k.publish();
  ASSERT_OBD_ASSIGN(size_t done, process_ring(ring, disk_, *io_, nullptr));
  EXPECT_EQ(done, 2u);
  auto got = k.reap();
  EXPECT_EQ(got[bad_iov].status, kStatusCheckCondition);
  EXPECT_EQ(got[bad_iov].key, 4);
  EXPECT_EQ(got[good].status, kStatusGood);
  // An entry whose length runs past the ring's end.
  uint32_t at = k.head();
  k.queue(cdb10(0x28, 0, 1), {{0, 512}});
  reinterpret_cast<tcmu_cmd_entry*>(k.map() + 128 + at)->hdr.len_op = 8192 | TCMU_OP_CMD;
  k.publish();
  auto r = process_ring(ring, disk_, *io_, nullptr);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kEIO);
  // Bad mailboxes are refused at attach.
  KernelRing v(4096, 4096);
  v.mb()->version = 1;
  EXPECT_EQ(Ring::attach(v.map(), v.map_len()).status().code(), Code::kENOTSUP);
  v.mb()->version = TCMU_MAILBOX_VERSION;
  v.mb()->cmdr_size = 1 << 20;
  EXPECT_EQ(Ring::attach(v.map(), v.map_len()).status().code(), Code::kEIO);
  EXPECT_FALSE(Ring::attach(v.map(), 100).is_ok());
}

// Random bytes in the command ring with a random head: never a crash.
TEST_F(TcmuRingTest, RandomRingBytesNeverCrash) {
  std::mt19937_64 rng(21);
  for (int iter = 0; iter < 3000; iter++) {
    KernelRing k(2048, 16384);
    for (uint32_t i = 0; i < 2048; i++) k.map()[128 + i] = uint8_t(rng());
    // Often a plausible entry: a real length and op, data offsets in range.
    for (uint32_t pos = 0; pos + 128 <= 2048 && rng() % 3; pos += 128) {
      auto* e = reinterpret_cast<tcmu_cmd_entry*>(k.map() + 128 + pos);
      e->hdr.len_op = 128 | uint32_t(rng() % 3);
      e->req.iov_cnt = uint32_t(rng() % 4);
      e->req.cdb_off = 128 + pos + 112 + rng() % 24;
      if (rng() % 2) k.map()[e->req.cdb_off] = uint8_t(rng() % 2 ? 0x28 : 0x12);
    }
    k.mb()->cmd_head = uint32_t(rng() % 256) * 8;
    ASSERT_OBD_ASSIGN(Ring ring, Ring::attach(k.map(), k.map_len()));
    auto r = process_ring(ring, disk_, *io_, nullptr);
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), Code::kEIO);
    }
  }
}

TEST(TcmuCfgString, Parses) {
  auto c = parse_cfgstring("overlaybd//var/lib/containerd/snapshots/12/block/config.v1.json");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->config_path, "/var/lib/containerd/snapshots/12/block/config.v1.json");
  EXPECT_EQ(c->dev_id, "");
  c = parse_cfgstring("overlaybd//a/config.v1.json;128");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->config_path, "/a/config.v1.json");
  EXPECT_EQ(c->dev_id, "128");
  c = parse_cfgstring("overlaybd//a;b;c");
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->config_path, "/a");
  EXPECT_EQ(c->dev_id, "b;c");
  for (const char* bad : {"", "overlaybd", "overlaybd/", "overlaybd/;1", "overlaybd/rel/config.v1.json",
                          "overlaybd//a;", "file//a", "overlaybdx//a", "/overlaybd//a"}) {
    auto r = parse_cfgstring(bad);
    EXPECT_FALSE(r.is_ok()) << bad;
    if (!r.is_ok()) {
      EXPECT_EQ(r.status().code(), Code::kEINVAL) << bad;
    }
  }
  EXPECT_FALSE(parse_cfgstring(std::string_view("overlaybd//a\0b", 14)).is_ok());
}

TEST(TcmuCfgString, UioName) {
  auto u = parse_uio_name("tcm-user/999999999/dev_128/overlaybd//p/config.v1.json;128\n");
  ASSERT_TRUE(u.is_ok());
  EXPECT_EQ(u->hba, "999999999");
  EXPECT_EQ(u->device, "dev_128");
  EXPECT_EQ(u->cfgstring, "overlaybd//p/config.v1.json;128");
  auto c = parse_cfgstring(u->cfgstring);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->config_path, "/p/config.v1.json");
  EXPECT_EQ(c->dev_id, "128");
  for (const char* bad : {"uio_pci", "tcm-user/1", "tcm-user/1/dev", "tcm-user//dev/x", "tcm-user/1//x"})
    EXPECT_FALSE(parse_uio_name(bad).is_ok()) << bad;
}

}  // namespace
