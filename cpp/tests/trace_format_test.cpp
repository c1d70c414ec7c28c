// The prefetch trace file (format spec §6.4) built by hand from the spec's
// byte layout, its corruptions, a decode fuzz, and how load() reads a
// recordTracePath (missing, empty, binary trace, text list).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <random>

#include "common/crc32c.h"
#include "tests/test_util.h"
#include "trace/plan.h"

using namespace obd;
using obd::trace::Record;

namespace {

void le(std::vector<uint8_t>& v, uint64_t x, int n) {
  for (int i = 0; i < n; i++) v.push_back(uint8_t(x >> (8 * i)));
}

// One record as the spec lays it out: op, 3 pad bytes, layer, count, offset.
void put_record(std::vector<uint8_t>& v, char op, uint32_t layer, uint64_t count, int64_t offset, uint8_t pad = 0) {
  v.push_back(uint8_t(op));
  v.insert(v.end(), 3, pad);
  le(v, layer, 4);
  le(v, count, 8);
  le(v, uint64_t(offset), 8);
}

// Header (magic, 4 pad, data_size, checksum chained over records, 4 pad) + records.
std::vector<uint8_t> hand_trace(const std::vector<uint8_t>& recs) {
  uint32_t crc = 0;
  for (size_t i = 0; i < recs.size(); i += 24) crc = crc32c_update(crc, recs.data() + i, 24);
  std::vector<uint8_t> v = {0x20, 0x18, 0xEF, 0xC2, 0, 0, 0, 0};
  le(v, recs.size(), 8);
  le(v, crc, 4);
  v.insert(v.end(), 4, 0);
  v.insert(v.end(), recs.begin(), recs.end());
  return v;
}

const std::vector<Record> kRecords = {
    {'R', 0, 4096, 0},
    {'R', 2, 1 << 20, 123456789012},
    {'W', 1, 512, 8192},
    {'R', 254, 7, (int64_t(1) << 40) + 3},
};

std::vector<uint8_t> hand_records(uint8_t pad = 0) {
  std::vector<uint8_t> v;
  for (const Record& r : kRecords) put_record(v, char(r.op), r.layer, r.count, r.offset, pad);
  return v;
}

void expect_corrupt(const std::vector<uint8_t>& bytes, const std::string& field) {
  auto r = trace::decode(bytes, "t.trace");
  ASSERT_FALSE(r.is_ok()) << field;
  EXPECT_EQ(r.status().code(), Code::kTRACE_CORRUPT) << r.status().to_string();
  EXPECT_TRUE(r.status().is(Category::kCorrupt));
  EXPECT_NE(r.status().message().find("t.trace"), std::string::npos) << r.status().message();
  EXPECT_NE(r.status().message().find(field), std::string::npos) << r.status().message();
}

void write_file(const std::string& path, const void* data, size_t n) {
  std::ofstream(path, std::ios::binary).write(static_cast<const char*>(data), std::streamsize(n));
}

}  // namespace

TEST(TraceFormat, HandBuiltTraceDecodesAndEncodesToTheSameBytes) {
  std::vector<uint8_t> bytes = hand_trace(hand_records());
  ASSERT_EQ(bytes.size(), 24u + 24u * kRecords.size());
  ASSERT_OBD_ASSIGN(auto recs, trace::decode(bytes, "hand"));
  EXPECT_EQ(recs, kRecords);
  EXPECT_EQ(trace::encode(kRecords), bytes);
  // The checksum chained record by record is the one update over all of them.
  EXPECT_EQ(crc32c_update(0, bytes.data() + 24, bytes.size() - 24),
            uint32_t(bytes[16] | bytes[17] << 8 | bytes[18] << 16 | uint32_t(bytes[19]) << 24));
}

TEST(TraceFormat, EmptyTraceIsAHeaderOnly) {
  std::vector<uint8_t> bytes = hand_trace({});
  EXPECT_EQ(trace::encode({}), bytes);
  ASSERT_OBD_ASSIGN(auto recs, trace::decode(bytes, "empty"));
  EXPECT_TRUE(recs.empty());
}

TEST(TraceFormat, PaddingAsStoredIsPartOfTheChecksum) {
  // A writer that leaves garbage in the pad bytes (upstream does not zero
  // them) still decodes; the checksum covers the bytes as stored.
  std::vector<uint8_t> bytes = hand_trace(hand_records(0xAB));
  ASSERT_OBD_ASSIGN(auto recs, trace::decode(bytes, "padded"));
  EXPECT_EQ(recs, kRecords);
  bytes[24 + 1] ^= 1;  // a pad byte changed after the checksum was taken
  expect_corrupt(bytes, "checksum");
}

TEST(TraceFormat, CorruptionsNameTheField) {
  const std::vector<uint8_t> good = hand_trace(hand_records());
  auto bad = good;
  bad[0] ^= 0x01;
  expect_corrupt(bad, "magic");
  bad = good;
  bad[8] += 24;  // data_size says one more record than the file holds
  expect_corrupt(bad, "data_size");
  bad = good;
  bad[8 + 7] = 0xFF;  // data_size near 2^64: no overflow into a match
  expect_corrupt(bad, "data_size");
  bad = good;
  bad[24 + 24 + 9] ^= 0x40;  // a record's count
  expect_corrupt(bad, "checksum");
  bad = good;
  bad[16] ^= 0x01;  // the stored checksum
  expect_corrupt(bad, "checksum");
  bad = good;
  bad.pop_back();  // truncated
  expect_corrupt(bad, "data_size");
  bad.resize(10);  // not even a header
  expect_corrupt(bad, "truncated");
  expect_corrupt({}, "truncated");
  // data_size matches the file but is not a whole number of records.
  std::vector<uint8_t> odd = hand_records();
  odd.resize(30);
  bad = hand_trace({});
  bad[8] = 30;
  bad.insert(bad.end(), odd.begin(), odd.end());
  uint32_t crc = crc32c_update(0, odd.data(), odd.size());
  for (int i = 0; i < 4; i++) bad[16 + i] = uint8_t(crc >> (8 * i));
  expect_corrupt(bad, "multiple of 24");
}

TEST(TraceFormat, FuzzDecodeNeverCrashes) {
  std::mt19937_64 rng(7);
  const std::vector<uint8_t> good = hand_trace(hand_records());
  int accepted = 0;
  for (int i = 0; i < 20000; i++) {
    std::vector<uint8_t> b;
    switch (i % 3) {
      case 0:  // random bytes
        b = test::random_bytes(rng, rng() % 200);
        break;
      case 1: {  // random bytes behind a valid magic and a consistent size
        b = test::random_bytes(rng, 24 + 24 * (rng() % 6) + (rng() % 4 == 0 ? rng() % 24 : 0));
        uint32_t magic = trace::kMagic;
        uint64_t ds = b.size() - 24;
        std::memcpy(b.data(), &magic, 4);
        std::memcpy(b.data() + 8, &ds, 8);
        if (rng() % 2) {
          uint32_t crc = crc32c_update(0, b.data() + 24, ds);
          std::memcpy(b.data() + 16, &crc, 4);
        }
        break;
      }
      default:  // a valid trace with a few bytes flipped or cut
        b = good;
        for (int k = int(rng() % 3); k >= 0; k--) b[rng() % b.size()] ^= uint8_t(1 + rng() % 255);
        if (rng() % 4 == 0) b.resize(rng() % b.size());
    }
    auto r = trace::decode(b, "fuzz");
    if (r.is_ok()) {
      accepted++;
      ASSERT_EQ(b.size(), 24 + 24 * r->size());
    } else {
      ASSERT_EQ(r.status().code(), Code::kTRACE_CORRUPT);
    }
  }
  EXPECT_GT(accepted, 0);  // the consistent-checksum cases get through
}

TEST(TraceLoad, ModeFollowsTheFile) {
  test::TempDir dir;
  ASSERT_OBD_ASSIGN(auto none, trace::load(dir.file("missing")));
  EXPECT_EQ(none.mode, trace::Mode::kNone);

  write_file(dir.file("empty"), "", 0);
  ASSERT_OBD_ASSIGN(auto rec, trace::load(dir.file("empty")));
  EXPECT_EQ(rec.mode, trace::Mode::kRecord);

  auto bytes = trace::encode(kRecords);
  write_file(dir.file("bin"), bytes.data(), bytes.size());
  ASSERT_OBD_ASSIGN(auto rep, trace::load(dir.file("bin")));
  EXPECT_EQ(rep.mode, trace::Mode::kReplay);
  EXPECT_EQ(rep.records, kRecords);

  std::string list = "/etc/x\n  /dir/ \r\n\n\tusr/bin/*\n/last";
  write_file(dir.file("list"), list.data(), list.size());
  ASSERT_OBD_ASSIGN(auto fl, trace::load(dir.file("list")));
  EXPECT_EQ(fl.mode, trace::Mode::kFileList);
  EXPECT_EQ(fl.paths, (std::vector<std::string>{"/etc/x", "/dir/", "/usr/bin/*", "/last"}));
}

TEST(TraceLoad, BadFilesAreErrors) {
  test::TempDir dir;
  auto bytes = trace::encode(kRecords);
  bytes[30] ^= 1;
  write_file(dir.file("bad"), bytes.data(), bytes.size());
  auto r = trace::load(dir.file("bad"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kTRACE_CORRUPT);
  EXPECT_NE(r.status().message().find("checksum"), std::string::npos);

  // Starts with the magic but is shorter than a header: a broken trace, not a list.
  write_file(dir.file("short"), bytes.data(), 10);
  r = trace::load(dir.file("short"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kTRACE_CORRUPT);

  const char bin[] = "/etc/x\n\0\1\2";
  write_file(dir.file("nul"), bin, sizeof bin);
  r = trace::load(dir.file("nul"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kEINVAL);
  EXPECT_NE(r.status().message().find("NUL byte at offset 7"), std::string::npos) << r.status().message();

  std::string big;
  while (big.size() <= trace::kMaxListSize) big += "/some/long/path/name\n";
  write_file(dir.file("big"), big.data(), big.size());
  r = trace::load(dir.file("big"));
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kEINVAL);
  EXPECT_NE(r.status().message().find("65536"), std::string::npos);

  r = trace::load(dir.path());
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kEINVAL);
}
