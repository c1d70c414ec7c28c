// Each CRC-32C implementation the CPU has, and the one crc32c_update picks,
// against a bitwise reference for every length up to 5000 bytes, several
// seeds and misalignments.
#include <gtest/gtest.h>

#include <random>
#include <vector>

#include "common/crc32c.h"
#include "common/crc32c_impl.h"

namespace {

uint32_t reference(uint32_t c, const uint8_t* p, size_t n) {
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
  }
  return c;
}

TEST(Crc32c, MatchesBitwiseReferenceAtEveryLength) {
  std::mt19937 rng(1);
  std::vector<uint8_t> buf(5100);
  for (auto& b : buf) b = uint8_t(rng());
  int bad = 0;
  for (size_t n = 0; n <= 5000; n++)
    for (uint32_t seed : {0u, obd::kZFileBlockCrcSeed, 0xffffffffu}) {
      const uint8_t* p = buf.data() + n % 7;
      if (obd::crc32c_update(seed, p, n) != reference(seed, p, n)) {
        ADD_FAILURE() << "mismatch at length " << n << " seed " << seed;
        if (++bad > 5) return;
      }
    }
}

TEST(Crc32c, EveryImplementationMatchesTheReference) {
  std::mt19937 rng(2);
  std::vector<uint8_t> buf(70000);
  for (auto& b : buf) b = uint8_t(rng());
  auto impls = obd::crc32c_impl::usable();
  EXPECT_GE(impls.size(), 1u);
  for (const auto& impl : impls) {
    int bad = 0;
    std::vector<size_t> lengths;
    for (size_t n = 0; n <= 5000; n++) lengths.push_back(n);
    for (size_t n : {8191, 8192, 8193, 65536, 69000}) lengths.push_back(n);
    for (size_t n : lengths)
      for (uint32_t seed : {0u, obd::kZFileBlockCrcSeed, 0xffffffffu}) {
        const uint8_t* p = buf.data() + (n * 13) % 61;
        if (impl.fn(seed, p, n) != reference(seed, p, n)) {
          ADD_FAILURE() << impl.name << ": mismatch at length " << n << " seed " << seed;
          if (++bad > 5) break;
        }
      }
  }
}

TEST(Crc32c, KnownValue) {
  // Standard CRC-32C("123456789") = 0xE3069283.
  EXPECT_EQ(obd::crc32c_update(~0u, "123456789", 9) ^ ~0u, 0xE3069283u);
}

}  // namespace
