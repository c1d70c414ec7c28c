// SCSI command emulation of the TCMU frontend against real images (a
// committed lower, with and without an append upper) through the
// BlockDevice queue: data read equals the image, writes land, UNMAP and
// WRITE SAME zero, capacity and the INQUIRY/MODE SENSE pages, sense data for
// bad ranges, unsupported commands and I/O errors, and random CDBs.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <vector>

#include "device/image_device.h"
#include "frontend/tcmu/block_io.h"
#include "frontend/tcmu/scsi.h"
#include "frontend/tcmu/scsi_wire.h"
#include "lsmt/rw_layer.h"
#include "tests/scsi_cdb.h"
#include "tests/test_util.h"

using namespace obd;
using namespace obd::frontend::tcmu;
using obd::test::cdb10;
using obd::test::cdb16;

namespace {

constexpr uint64_t kSize = 4 << 20;
constexpr uint64_t kBlocks = kSize / 512;

std::vector<uint8_t> cdb6(uint8_t op, uint8_t b1, uint8_t b2, uint8_t b3, uint8_t b4) {
  return {op, b1, b2, b3, b4, 0};
}

void expect_sense(const ScsiResult& r, SenseKey key, uint8_t asc, uint8_t ascq = 0) {
  EXPECT_EQ(r.status, kStatusCheckCondition);
  EXPECT_EQ(r.sense[0], 0x70);
  EXPECT_EQ(r.sense[7], 10);
  EXPECT_EQ(int(r.key()), int(key));
  EXPECT_EQ(r.asc(), asc);
  EXPECT_EQ(r.ascq(), ascq);
}

class ScsiTest : public testing::Test {
 protected:
  void SetUp() override {
    std::mt19937_64 rng(7);
    content_ = test::random_bytes(rng, kSize);
    std::memset(content_.data() + kSize / 2, 0, 65536);  // an unmapped stretch
    lower_ = dir_.file("lower.lsmt");
    ASSERT_OBD_OK(test::make_lower(lower_, content_));
  }

  // Opens the image (writable: with a fresh append upper) as a device.
  void open(bool writable) {
    ImageSpec spec;
    spec.lowers.push_back({lower_});
    if (writable) {
      spec.upper = UpperSpec{dir_.file("upper.data"), dir_.file("upper.index")};
      lsmt::CreateOptions co;
      co.virtual_size = kSize;
      ASSERT_OBD_OK(lsmt::create_rw_layer(spec.upper->data, spec.upper->index, co));
    }
    spec_ = spec;
    ASSERT_OBD_ASSIGN(auto img, open_image(spec));
    image_ = img;
    dev_ = make_image_device(img);
    ASSERT_OBD_ASSIGN(auto q, dev_->open_queue(0));
    queue_ = std::move(q);
    io_ = std::make_unique<QueueIo>(*queue_);
    disk_ = disk_info(*dev_, "obd-test-serial");
  }

  ScsiResult exec(const std::vector<uint8_t>& cdb, std::vector<uint8_t>& buf) {
    iovec v{buf.data(), buf.size()};
    return execute_cdb(cdb, {&v, 1}, disk_, *io_);
  }
  ScsiResult exec(const std::vector<uint8_t>& cdb) {
    return execute_cdb(cdb, {}, disk_, *io_);
  }

  std::vector<uint8_t> image_bytes(uint64_t off, size_t len) {
    std::vector<uint8_t> b(len);
    auto got = image_->pread(b.data(), len, off);
    EXPECT_TRUE(got.is_ok());
    return b;
  }

  test::TempDir dir_;
  std::string lower_;
  std::vector<uint8_t> content_;
  ImageSpec spec_;
  ImagePtr image_;
  std::unique_ptr<BlockDevice> dev_;
  std::unique_ptr<IoQueue> queue_;
  std::unique_ptr<QueueIo> io_;
  DiskInfo disk_;
};

TEST_F(ScsiTest, ReadsEqualImageBytes) {
  open(false);
  std::mt19937_64 rng(3);
  for (int i = 0; i < 200; i++) {
    uint32_t n = 1 + rng() % 256;
    uint64_t lba = rng() % (kBlocks - n + 1);
    std::vector<uint8_t> buf(n * 512);
    auto cdb = i % 2 ? cdb16(0x88, lba, n) : cdb10(0x28, uint32_t(lba), uint16_t(n));
    // Three buffers, cut off sector boundaries, as the kernel's data area can be.
    size_t c1 = rng() % (buf.size() + 1), c2 = c1 + (buf.size() - c1) / 3;
    iovec v[3] = {{buf.data(), c1}, {buf.data() + c1, c2 - c1}, {buf.data() + c2, buf.size() - c2}};
    ScsiResult r = execute_cdb(cdb, v, disk_, *io_);
    ASSERT_EQ(r.status, kStatusGood) << r.cause.to_string();
    EXPECT_EQ(r.data_in, buf.size());
    ASSERT_EQ(0, std::memcmp(buf.data(), content_.data() + lba * 512, buf.size())) << "lba " << lba;
  }
  // READ (6) with length 0 means 256 blocks; READ (12).
  std::vector<uint8_t> buf(256 * 512);
  ASSERT_EQ(exec(cdb6(0x08, 0, 0, 8, 0), buf).status, kStatusGood);
  EXPECT_EQ(0, std::memcmp(buf.data(), content_.data() + 8 * 512, buf.size()));
  std::vector<uint8_t> c12(12, 0);
  c12[0] = 0xa8;
  put_be32(&c12[2], 100);
  put_be32(&c12[6], 4);
  buf.assign(4 * 512, 0);
  ASSERT_EQ(exec(c12, buf).status, kStatusGood);
  EXPECT_EQ(0, std::memcmp(buf.data(), content_.data() + 100 * 512, buf.size()));
  // Buffers shorter than the transfer are refused, not overrun.
  buf.assign(512, 0);
  expect_sense(exec(cdb10(0x28, 0, 2), buf), SenseKey::kIllegalRequest, 0x24);
}

TEST_F(ScsiTest, CapacityAndProvisioning) {
  for (bool writable : {false, true}) {
    SCOPED_TRACE(writable);
    open(writable);
    std::vector<uint8_t> buf(8);
    ASSERT_EQ(exec(cdb10(0x25, 0, 0), buf).status, kStatusGood);
    EXPECT_EQ(get_be32(&buf[0]), kBlocks - 1);
    EXPECT_EQ(get_be32(&buf[4]), 512u);
    std::vector<uint8_t> c = cdb16(0x9e, 0, 32, 0x10);
    buf.assign(32, 0xee);
    ScsiResult r = exec(c, buf);
    ASSERT_EQ(r.status, kStatusGood);
    EXPECT_EQ(r.data_in, 32u);
    EXPECT_EQ(get_be64(&buf[0]), kBlocks - 1);
    EXPECT_EQ(get_be32(&buf[8]), 512u);
    EXPECT_EQ(bool(buf[14] & 0x80), writable);  // LBPME
    // Another service action of SERVICE ACTION IN (16).
    expect_sense(exec(cdb16(0x9e, 0, 32, 0x12), buf), SenseKey::kIllegalRequest, 0x24);
    buf.assign(64, 0);
    ASSERT_EQ(exec(cdb6(0x12, 1, 0xb2, 0, 64), buf).status, kStatusGood);
    EXPECT_EQ(buf[1], 0xb2);
    EXPECT_EQ(bool(buf[5] & 0x80), writable);  // LBPU
    EXPECT_EQ(bool(buf[5] & 0x40), writable);  // LBPWS
  }
}

TEST_F(ScsiTest, InquiryPages) {
  open(true);
  std::vector<uint8_t> buf(255);
  ScsiResult r = exec(cdb6(0x12, 0, 0, 0, 255), buf);
  ASSERT_EQ(r.status, kStatusGood);
  EXPECT_EQ(r.data_in, 36u);
  EXPECT_EQ(buf[0], 0x00);  // direct access block device
  EXPECT_EQ(buf[4], 31);
  EXPECT_EQ(std::string(buf.begin() + 8, buf.begin() + 16), "LIO-ORG ");
  EXPECT_EQ(std::string(buf.begin() + 16, buf.begin() + 32), "TCMU device     ");
  // Allocation length cuts the data short.
  r = exec(cdb6(0x12, 0, 0, 0, 5), buf);
  EXPECT_EQ(r.data_in, 5u);
  // Supported pages.
  r = exec(cdb6(0x12, 1, 0x00, 0, 255), buf);
  ASSERT_EQ(r.status, kStatusGood);
  std::vector<uint8_t> pages(buf.begin() + 4, buf.begin() + 4 + buf[3]);
  EXPECT_EQ(pages, (std::vector<uint8_t>{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}));
  r = exec(cdb6(0x12, 1, 0x80, 0, 255), buf);
  EXPECT_EQ(std::string(buf.begin() + 4, buf.begin() + 4 + buf[3]), "obd-test-serial");
  // Device identification: NAA 6 and the T10 vendor id naming the serial.
  r = exec(cdb6(0x12, 1, 0x83, 0, 255), buf);
  ASSERT_EQ(r.status, kStatusGood);
  EXPECT_EQ(r.data_in, 4u + get_be16(&buf[2]));
  EXPECT_EQ(buf[4 + 1] & 0x0f, 3);  // NAA
  EXPECT_EQ(buf[4 + 4] >> 4, 6);
  size_t t10 = 4 + 20;
  EXPECT_EQ(buf[t10 + 1] & 0x0f, 1);
  EXPECT_EQ(std::string(buf.begin() + t10 + 4, buf.begin() + t10 + 4 + buf[t10 + 3]), "LIO-ORG obd-test-serial");
  // Block limits: UNMAP limits and the 4 KiB granularity.
  r = exec(cdb6(0x12, 1, 0xb0, 0, 255), buf);
  ASSERT_EQ(r.data_in, 64u);
  EXPECT_EQ(get_be32(&buf[20]), disk_.max_unmap_blocks);
  EXPECT_EQ(get_be32(&buf[24]), disk_.max_unmap_descriptors);
  EXPECT_EQ(get_be32(&buf[28]), 8u);
  EXPECT_EQ(get_be64(&buf[36]), disk_.max_write_same_blocks);
  // An unknown page, a page without EVPD, CMDDT.
  expect_sense(exec(cdb6(0x12, 1, 0x99, 0, 255), buf), SenseKey::kIllegalRequest, 0x24);
  expect_sense(exec(cdb6(0x12, 0, 0x80, 0, 255), buf), SenseKey::kIllegalRequest, 0x24);
  expect_sense(exec(cdb6(0x12, 2, 0, 0, 255), buf), SenseKey::kIllegalRequest, 0x24);
}

TEST_F(ScsiTest, ModeSenseWriteProtectAndPages) {
  for (bool writable : {false, true}) {
    SCOPED_TRACE(writable);
    open(writable);
    std::vector<uint8_t> buf(255);
    // MODE SENSE (6), all pages, with a block descriptor.
    ScsiResult r = exec(cdb6(0x1a, 0, 0x3f, 0, 255), buf);
    ASSERT_EQ(r.status, kStatusGood);
    EXPECT_EQ(r.data_in, 4u + 8 + 20 + 12);
    EXPECT_EQ(buf[0], r.data_in - 1);
    EXPECT_EQ(bool(buf[2] & 0x80), !writable);  // WP
    EXPECT_EQ(buf[3], 8);
    EXPECT_EQ(buf[4 + 7], 0);  // 512: 0x000200
    EXPECT_EQ(buf[4 + 6], 2);
    EXPECT_EQ(buf[12], 0x08);
    EXPECT_EQ(buf[12 + 2] & 0x04, 0x04);  // WCE
    EXPECT_EQ(buf[32], 0x0a);
    // MODE SENSE (10), caching page only, no block descriptor.
    std::vector<uint8_t> c(10, 0);
    c[0] = 0x5a;
    c[1] = 0x08;
    c[2] = 0x08;
    put_be16(&c[7], 255);
    r = exec(c, buf);
    ASSERT_EQ(r.status, kStatusGood);
    EXPECT_EQ(r.data_in, 8u + 20);
    EXPECT_EQ(get_be16(&buf[0]), r.data_in - 2);
    EXPECT_EQ(bool(buf[3] & 0x80), !writable);
    EXPECT_EQ(get_be16(&buf[6]), 0);
    EXPECT_EQ(buf[8], 0x08);
    // Saved values are not supported; nor is an unknown page.
    expect_sense(exec(cdb6(0x1a, 0, 0xc8, 0, 255), buf), SenseKey::kIllegalRequest, 0x39);
    expect_sense(exec(cdb6(0x1a, 0, 0x01, 0, 255), buf), SenseKey::kIllegalRequest, 0x24);
  }
}

TEST_F(ScsiTest, SmallCommands) {
  open(false);
  EXPECT_EQ(exec(cdb6(0x00, 0, 0, 0, 0)).status, kStatusGood);  // TEST UNIT READY
  std::vector<uint8_t> buf(32, 0xff);
  ScsiResult r = exec(cdb6(0x03, 0, 0, 0, 32), buf);  // REQUEST SENSE: nothing pending
  ASSERT_EQ(r.status, kStatusGood);
  EXPECT_EQ(r.data_in, 18u);
  EXPECT_EQ(buf[0], 0x70);
  EXPECT_EQ(buf[2], 0);
  EXPECT_EQ(exec(cdb10(0x35, 0, 0)).status, kStatusGood);  // SYNCHRONIZE CACHE on a read-only disk
  EXPECT_EQ(exec(cdb16(0x91, 10, 10)).status, kStatusGood);
}

TEST_F(ScsiTest, ReadOnlyRefusesChanges) {
  open(false);
  std::vector<uint8_t> buf(4096, 1);
  expect_sense(exec(cdb10(0x2a, 0, 8), buf), SenseKey::kDataProtect, 0x27);
  expect_sense(exec(cdb16(0x8a, 0, 8), buf), SenseKey::kDataProtect, 0x27);
  expect_sense(exec(cdb16(0x93, 0, 8, 0x08), buf), SenseKey::kDataProtect, 0x27);
  std::vector<uint8_t> c(10, 0);
  c[0] = 0x42;
  put_be16(&c[7], 24);
  expect_sense(exec(c, buf), SenseKey::kDataProtect, 0x27);
  EXPECT_EQ(image_bytes(0, 4096), std::vector<uint8_t>(content_.begin(), content_.begin() + 4096));
}

TEST_F(ScsiTest, WritesLandAndPersist) {
  open(true);
  std::vector<uint8_t> model = content_;
  std::mt19937_64 rng(11);
  for (int i = 0; i < 100; i++) {
    uint32_t n = 1 + rng() % 64;
    uint64_t lba = rng() % (kBlocks - n + 1);
    std::vector<uint8_t> buf = test::random_bytes(rng, n * 512);
    auto cdb = i % 2 ? cdb16(0x8a, lba, n) : cdb10(0x2a, uint32_t(lba), uint16_t(n), i % 3 ? 0 : 0x08 /* FUA */);
    ScsiResult r = exec(cdb, buf);
    ASSERT_EQ(r.status, kStatusGood) << r.cause.to_string();
    std::memcpy(model.data() + lba * 512, buf.data(), buf.size());
  }
  ASSERT_EQ(exec(cdb10(0x35, 0, 0)).status, kStatusGood);
  EXPECT_TRUE(image_bytes(0, kSize) == model);
  // Flushed: a fresh open of the same layers reads the same.
  io_.reset();
  queue_.reset();
  dev_.reset();
  image_.reset();
  ASSERT_OBD_ASSIGN(auto again, open_image(spec_));
  std::vector<uint8_t> back(kSize);
  ASSERT_TRUE(again->pread(back.data(), kSize, 0).is_ok());
  EXPECT_TRUE(back == model);
}

TEST_F(ScsiTest, UnmapAndWriteSameZero) {
  open(true);
  std::vector<uint8_t> model = content_;
  auto zero = [&](uint64_t lba, uint64_t n) { std::memset(model.data() + lba * 512, 0, n * 512); };
  // UNMAP with two descriptors (one of zero blocks, which is a no-op).
  std::vector<uint8_t> p(8 + 3 * 16, 0);
  put_be16(&p[0], uint16_t(p.size() - 2));
  put_be16(&p[2], 48);
  put_be64(&p[8], 16);
  put_be32(&p[16], 40);
  put_be64(&p[24], 1000);
  put_be32(&p[32], 0);
  put_be64(&p[40], kBlocks - 9);
  put_be32(&p[48], 9);
  std::vector<uint8_t> c(10, 0);
  c[0] = 0x42;
  put_be16(&c[7], uint16_t(p.size()));
  ScsiResult r = exec(c, p);
  ASSERT_EQ(r.status, kStatusGood) << r.cause.to_string();
  zero(16, 40);
  zero(kBlocks - 9, 9);
  // WRITE SAME (16) with UNMAP and a zero block; WRITE SAME (16) NDOB.
  std::vector<uint8_t> block(512, 0);
  ASSERT_EQ(exec(cdb16(0x93, 3000, 500, 0x08), block).status, kStatusGood);
  zero(3000, 500);
  ASSERT_EQ(exec(cdb16(0x93, 6000, 17, 0x01)).status, kStatusGood);
  zero(6000, 17);
  // WRITE SAME (10) of a pattern, longer than one internal chunk.
  for (size_t i = 0; i < 512; i++) block[i] = uint8_t(i * 7 + 1);
  ASSERT_EQ(exec(cdb10(0x41, 200, 1200), block).status, kStatusGood);
  for (uint64_t b = 200; b < 1400; b++) std::memcpy(model.data() + b * 512, block.data(), 512);
  // A pattern with UNMAP set is still written.
  ASSERT_EQ(exec(cdb10(0x41, 7000, 3, 0x08), block).status, kStatusGood);
  for (uint64_t b = 7000; b < 7003; b++) std::memcpy(model.data() + b * 512, block.data(), 512);
  EXPECT_TRUE(image_bytes(0, kSize) == model);
  // WRITE SAME with 0 blocks reaches the last LBA.
  std::vector<uint8_t> zb(512, 0);
  ASSERT_EQ(exec(cdb16(0x93, kBlocks - 5, 0, 0x08), zb).status, kStatusGood);
  zero(kBlocks - 5, 5);
  EXPECT_TRUE(image_bytes(0, kSize) == model);
  // Malformed UNMAP parameter lists.
  c[8] = 4;
  expect_sense(exec(c, p), SenseKey::kIllegalRequest, 0x1a);
  put_be16(&c[7], 200);  // longer than the buffer
  expect_sense(exec(c, p), SenseKey::kIllegalRequest, 0x1a);
  // WRITE SAME bits we do not support.
  expect_sense(exec(cdb16(0x93, 0, 1, 0x10), zb), SenseKey::kIllegalRequest, 0x24);  // ANCHOR
  expect_sense(exec(cdb10(0x41, 0, 1, 0x02), zb), SenseKey::kIllegalRequest, 0x24);  // LBDATA
}

TEST_F(ScsiTest, OutOfRangeSense) {
  open(true);
  std::vector<uint8_t> buf(1024);
  expect_sense(exec(cdb10(0x28, kBlocks - 1, 2), buf), SenseKey::kIllegalRequest, 0x21);
  expect_sense(exec(cdb10(0x28, kBlocks, 1), buf), SenseKey::kIllegalRequest, 0x21);
  expect_sense(exec(cdb16(0x88, ~0ull, 2), buf), SenseKey::kIllegalRequest, 0x21);  // would wrap
  expect_sense(exec(cdb16(0x8a, ~0ull - 1, 2), buf), SenseKey::kIllegalRequest, 0x21);
  expect_sense(exec(cdb16(0x91, kBlocks, 1)), SenseKey::kIllegalRequest, 0x21);
  expect_sense(exec(cdb16(0x93, kBlocks - 1, 2, 0x08), buf), SenseKey::kIllegalRequest, 0x21);
  std::vector<uint8_t> p(24, 0);
  put_be16(&p[0], 22);
  put_be16(&p[2], 16);
  put_be64(&p[8], kBlocks - 1);
  put_be32(&p[16], 2);
  std::vector<uint8_t> c(10, 0);
  c[0] = 0x42;
  put_be16(&c[7], 24);
  expect_sense(exec(c, p), SenseKey::kIllegalRequest, 0x21);
  // The last block itself is fine.
  EXPECT_EQ(exec(cdb16(0x88, kBlocks - 2, 2), buf).status, kStatusGood);
}

TEST_F(ScsiTest, UnsupportedCommandsSense) {
  open(true);
  std::vector<uint8_t> buf(512);
  expect_sense(exec(std::vector<uint8_t>{0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, buf),
               SenseKey::kIllegalRequest, 0x20);  // MAINTENANCE IN
  expect_sense(exec(cdb10(0x55, 0, 0), buf), SenseKey::kIllegalRequest, 0x20);  // MODE SELECT (10)
  expect_sense(exec(cdb6(0x1b, 0, 0, 0, 0)), SenseKey::kIllegalRequest, 0x20);  // START STOP UNIT
  expect_sense(exec({0xc0, 0, 0, 0, 0, 0}), SenseKey::kIllegalRequest, 0x20);   // vendor specific
  expect_sense(exec({0x28, 0, 0}), SenseKey::kIllegalRequest, 0x20);             // CDB cut short
  expect_sense(exec(std::vector<uint8_t>{}), SenseKey::kIllegalRequest, 0x20);
}

// An image whose lower file lost its data under it: reads fail with MEDIUM
// ERROR (the kernel's EIO), and so does every command once the device closed.
TEST_F(ScsiTest, IoErrorsBecomeMediumError) {
  open(false);
  std::vector<uint8_t> buf(64 * 512);
  ASSERT_EQ(exec(cdb10(0x28, 0, 64), buf).status, kStatusGood);
  ASSERT_EQ(0, ::truncate(lower_.c_str(), 4096));
  ScsiResult r = exec(cdb10(0x28, 1024, 64), buf);
  expect_sense(r, SenseKey::kMediumError, 0x11);
  EXPECT_FALSE(r.cause.is_ok());
  dev_->close();
  r = exec(cdb10(0x28, 0, 64), buf);
  expect_sense(r, SenseKey::kMediumError, 0x11);
  EXPECT_EQ(r.cause.code(), Code::kCLOSED);
  expect_sense(exec(cdb10(0x35, 0, 0)), SenseKey::kMediumError, 0x0c);
}

// Random CDBs (valid opcodes with random fields, and random bytes) with
// random buffers: always a status, and CHECK CONDITION carries fixed sense.
TEST_F(ScsiTest, RandomCdbsNeverCrash) {
  open(true);
  const uint8_t ops[] = {0x00, 0x03, 0x12, 0x25, 0x9e, 0x1a, 0x5a, 0x08, 0x28, 0xa8, 0x88, 0x0a, 0x2a,
                         0xaa, 0x8a, 0x35, 0x91, 0x42, 0x41, 0x93, 0x7f, 0xa3, 0x55};
  std::mt19937_64 rng(99);
  int good = 0;
  for (int i = 0; i < 20000; i++) {
    std::vector<uint8_t> cdb = test::random_bytes(rng, rng() % 34);
    if (!cdb.empty() && rng() % 4) {
      cdb[0] = ops[rng() % sizeof ops];
      // Mostly small LBAs and lengths, so commands also get past the range checks.
      if (cdb.size() >= 10 && rng() % 2) {
        for (size_t k = 2; k < 6; k++) cdb[k] = 0;
        cdb[6] = 0;
        cdb[7] &= 0x01;
        if (cdb.size() >= 16) std::memset(&cdb[2], 0, 10), cdb[13] &= 0x03;
      }
    }
    std::vector<uint8_t> buf = test::random_bytes(rng, rng() % 3 ? rng() % 4096 : 512 * (rng() % 600));
    size_t cut = buf.empty() ? 0 : rng() % buf.size();
    iovec v[2] = {{buf.data(), cut}, {buf.data() + cut, buf.size() - cut}};
    ScsiResult r = execute_cdb(cdb, v, disk_, *io_);
    ASSERT_TRUE(r.status == kStatusGood || r.status == kStatusCheckCondition);
    ASSERT_LE(r.data_in, buf.size());
    if (r.status == kStatusCheckCondition) {
      ASSERT_EQ(r.sense[0], 0x70);
      ASSERT_NE(int(r.key()), int(SenseKey::kMediumError)) << r.cause.to_string();
    } else {
      good++;
    }
  }
  EXPECT_GT(good, 1000);
}

}  // namespace
