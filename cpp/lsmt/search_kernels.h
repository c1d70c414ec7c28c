// The compares at the heart of an RoIndex lookup, one struct per instruction
// set: `keys_le` counts the keys <= x in a 16-key search-tree node, `ends_le`
// the segments ending at or before x in a group of 16. Each struct's
// functions carry their own target, so the build stays portable.
//
// Lookups instantiate templates with these structs inside a function marked
// OBD_SEARCH_FLAT_<ISA>: `flatten` inlines the whole descent into that one
// function (a call a tree level cost more than its compare), and its target
// lets the kernels inline there.
#pragma once
#include <cstddef>
#include <cstdint>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "lsmt/format.h"

#define OBD_SEARCH_FLAT_SCALAR __attribute__((flatten))
#define OBD_SEARCH_FLAT_SSE42 __attribute__((target("sse4.2,popcnt"), flatten))
#define OBD_SEARCH_FLAT_AVX2 __attribute__((target("avx2,popcnt"), flatten))
#define OBD_SEARCH_FLAT_AVX512 __attribute__((target("avx512f,popcnt"), flatten))

namespace obd::lsmt::search_kernels {

inline constexpr size_t kWidth = 16;  // keys a node, segments a group

// Branch free: the loads of a node or group issue together, and a lookup
// that ends a misprediction later does not discard the next one's work.
struct Scalar {
  static size_t keys_le(const uint64_t* k, uint64_t x) {
    size_t n = 0;
    for (size_t i = 0; i < kWidth; i++) n += k[i] <= x;
    return n;
  }
  static size_t ends_le(const Segment* g, uint64_t x) {
    size_t n = 0;
    for (size_t i = 0; i < kWidth; i++) n += g[i].end() <= x;
    return n;
  }
};

#if defined(__x86_64__)
// No unsigned 64-bit compare before AVX-512: flip the sign bits, compare signed.
struct Sse42 : Scalar {
  __attribute__((target("sse4.2,popcnt"))) static size_t keys_le(const uint64_t* k, uint64_t x) {
    const __m128i sign = _mm_set1_epi64x(INT64_MIN), v = _mm_xor_si128(_mm_set1_epi64x(int64_t(x)), sign);
    int gt = 0;
    for (size_t i = 0; i < kWidth; i += 2) {
      __m128i key = _mm_xor_si128(_mm_load_si128(reinterpret_cast<const __m128i*>(k + i)), sign);
      gt += __builtin_popcount(_mm_movemask_pd(_mm_castsi128_pd(_mm_cmpgt_epi64(key, v))));
    }
    return kWidth - size_t(gt);
  }
};

struct Avx2 : Scalar {
  __attribute__((target("avx2,popcnt"))) static size_t keys_le(const uint64_t* k, uint64_t x) {
    const __m256i sign = _mm256_set1_epi64x(INT64_MIN), v = _mm256_xor_si256(_mm256_set1_epi64x(int64_t(x)), sign);
    int gt = 0;
    for (size_t i = 0; i < kWidth; i += 4) {
      __m256i key = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(k + i)), sign);
      gt += __builtin_popcount(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(key, v))));
    }
    return kWidth - size_t(gt);
  }
};

struct Avx512 {
  __attribute__((target("avx512f,popcnt"))) static size_t keys_le(const uint64_t* k, uint64_t x) {
    const __m512i v = _mm512_set1_epi64(int64_t(x));
    __mmask16 le = _mm512_kunpackb(_mm512_cmple_epu64_mask(_mm512_load_si512(k + 8), v),
                                   _mm512_cmple_epu64_mask(_mm512_load_si512(k), v));
    return size_t(__builtin_popcount(_cvtmask16_u32(le)));
  }

  // Six vector loads instead of 32 scalar ones: a lookup then holds fewer
  // load slots, so more lookups overlap their cache misses. 8 segments are 3
  // vectors of 8 qwords: offsets are qwords 0,3,..,21 and lengths the low
  // halves of qwords 2,5,..,23. Each pair of permutes picks 6 lanes from the
  // first two vectors, then the rest from the third.
  __attribute__((target("avx512f,popcnt"))) static size_t ends_le(const Segment* g, uint64_t x) {
    static_assert(sizeof(Segment) == 24 && offsetof(Segment, offset) == 0 && offsetof(Segment, length) == 16);
    const __m512i off_ab = _mm512_setr_epi64(0, 3, 6, 9, 12, 15, 0, 0);
    const __m512i off_c = _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 8 + 2, 8 + 5);
    const __m512i len_ab = _mm512_setr_epi64(2, 5, 8, 11, 14, 0, 0, 0);
    const __m512i len_c = _mm512_setr_epi64(0, 1, 2, 3, 4, 8 + 1, 8 + 4, 8 + 7);
    const __m512i v = _mm512_set1_epi64(int64_t(x)), low32 = _mm512_set1_epi64(0xffffffff);
    __mmask8 le[2];
    for (int half = 0; half < 2; half++) {
      const uint64_t* q = reinterpret_cast<const uint64_t*>(g + 8 * half);
      __m512i a = _mm512_loadu_si512(q), b = _mm512_loadu_si512(q + 8), c = _mm512_loadu_si512(q + 16);
      __m512i off = _mm512_permutex2var_epi64(_mm512_permutex2var_epi64(a, off_ab, b), off_c, c);
      __m512i len = _mm512_and_si512(_mm512_permutex2var_epi64(_mm512_permutex2var_epi64(a, len_ab, b), len_c, c), low32);
      le[half] = _mm512_cmple_epu64_mask(_mm512_add_epi64(off, len), v);
    }
    return size_t(__builtin_popcount(_cvtmask16_u32(_mm512_kunpackb(le[1], le[0]))));
  }
};
#endif

}  // namespace obd::lsmt::search_kernels
