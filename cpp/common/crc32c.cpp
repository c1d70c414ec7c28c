#include "common/crc32c.h"

#include <array>
#include <cstring>

#include "common/crc32c_impl.h"

namespace obd::crc32c_impl {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;

// Slicing-by-8 tables for CPUs without SSE4.2.
struct Tables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  Tables() {
    for (uint32_t i = 0; i < 256; i++) {
      uint32_t c = i;
      for (int k = 0; k < 8; k++) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
      t[0][i] = c;
    }
    for (int s = 1; s < 8; s++)
      for (uint32_t i = 0; i < 256; i++) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint32_t soft_tables(uint32_t crc, const uint8_t* p, size_t n) {
  static const Tables tb;
  const auto& t = tb.t;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= crc;
    crc = t[7][w & 0xff] ^ t[6][(w >> 8) & 0xff] ^ t[5][(w >> 16) & 0xff] ^ t[4][(w >> 24) & 0xff] ^
          t[3][(w >> 32) & 0xff] ^ t[2][(w >> 40) & 0xff] ^ t[1][(w >> 48) & 0xff] ^ t[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ t[0][(crc ^ *p++) & 0xff];
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc_hw(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = uint32_t(c);
  while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
  return c32;
}

// The crc32 instruction has a latency of three cycles and a throughput of
// one, so three independent streams over adjacent chunks run about three
// times faster; the chunk CRCs are then joined by "appending" kChunk zero
// bytes to a register, a linear map done with four table lookups.
// Two chunk sizes: 256-byte chunks for the bulk, 64-byte ones for the tail,
// so a 2 KiB compressed block leaves at most 191 bytes to the serial loop.
template <size_t kChunk>
struct ShiftTable {
  std::array<std::array<uint32_t, 256>, 4> t{};
  ShiftTable() {
    static const uint8_t zeros[kChunk] = {};
    for (int k = 0; k < 4; k++)
      for (uint32_t v = 0; v < 256; v++) t[k][v] = soft_tables(v << (8 * k), zeros, kChunk);
  }
  uint32_t shift(uint32_t r) const {
    return t[0][r & 0xff] ^ t[1][(r >> 8) & 0xff] ^ t[2][(r >> 16) & 0xff] ^ t[3][r >> 24];
  }
};

// Consumes rounds of three adjacent kChunk-byte chunks from p/n.
template <size_t kChunk>
__attribute__((target("sse4.2"))) uint32_t crc_rounds(uint32_t crc, const uint8_t*& p, size_t& n) {
  static const ShiftTable<kChunk> st;
  while (n >= 3 * kChunk) {
    uint64_t a = crc, b = 0, c = 0;
    for (size_t i = 0; i < kChunk; i += 8) {
      uint64_t wa, wb, wc;
      std::memcpy(&wa, p + i, 8);
      std::memcpy(&wb, p + kChunk + i, 8);
      std::memcpy(&wc, p + 2 * kChunk + i, 8);
      a = __builtin_ia32_crc32di(a, wa);
      b = __builtin_ia32_crc32di(b, wb);
      c = __builtin_ia32_crc32di(c, wc);
    }
    crc = st.shift(st.shift(uint32_t(a)) ^ uint32_t(b)) ^ uint32_t(c);
    p += 3 * kChunk;
    n -= 3 * kChunk;
  }
  return crc;
}

#endif

}  // namespace

uint32_t soft(uint32_t crc, const uint8_t* p, size_t n) { return soft_tables(crc, p, n); }

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t crc32_3way(uint32_t crc, const uint8_t* p, size_t n) {
  crc = crc_rounds<256>(crc, p, n);
  crc = crc_rounds<64>(crc, p, n);
  return crc_hw(crc, p, n);
}
#endif

std::vector<Impl> usable() {
  std::vector<Impl> out{{"soft", soft}};
#if defined(__x86_64__)
  if (__builtin_cpu_supports("sse4.2")) out.push_back({"crc32_3way", crc32_3way});
  if (__builtin_cpu_supports("sse4.2") && __builtin_cpu_supports("pclmul") && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("vpclmulqdq"))
    out.push_back({"vpclmul", vpclmul});
#endif
  return out;
}

}  // namespace obd::crc32c_impl

namespace obd {

// The fastest implementation the CPU has, chosen once.
uint32_t crc32c_update(uint32_t crc, const void* data, size_t len) {
  static const crc32c_impl::Fn best = crc32c_impl::usable().back().fn;
  return best(crc, static_cast<const uint8_t*>(data), len);
}

}  // namespace obd
