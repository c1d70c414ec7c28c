// crc_selftest: the interleaved CRC-32C against a bitwise reference for
// every length up to 5000 bytes, several seeds and misalignments.
#include <cstdio>
#include <random>
#include <vector>

#include "common/crc32c.h"

static uint32_t reference(uint32_t c, const uint8_t* p, size_t n) {
  while (n--) {
    c ^= *p++;
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? 0x82F63B78u : 0);
  }
  return c;
}

int main() {
  std::mt19937 rng(1);
  std::vector<uint8_t> buf(5100);
  for (auto& b : buf) b = uint8_t(rng());
  int bad = 0;
  for (size_t n = 0; n <= 5000; n++)
    for (uint32_t seed : {0u, obd::kZFileBlockCrcSeed, 0xffffffffu})
      if (obd::crc32c_update(seed, buf.data() + n % 7, n) != reference(seed, buf.data() + n % 7, n) && ++bad < 5)
        std::fprintf(stderr, "mismatch at length %zu seed %u\n", n, seed);
  // A known value: standard CRC-32C("123456789") = 0xE3069283.
  const char* nine = "123456789";
  if ((obd::crc32c_update(~0u, nine, 9) ^ ~0u) != 0xE3069283u) bad++;
  std::printf(bad ? "crc_selftest: %d mismatches\n" : "crc_selftest: ok\n", bad);
  return bad ? 1 : 0;
}
