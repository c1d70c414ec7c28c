// The CRC-32C implementations crc32c_update() picks from at run time, named
// so that tests and benchmarks can run each one the CPU has.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace obd::crc32c_impl {

using Fn = uint32_t (*)(uint32_t crc, const uint8_t* p, size_t n);

struct Impl {
  const char* name;
  Fn fn;
};

// Slicing-by-8 tables: any CPU.
uint32_t soft(uint32_t crc, const uint8_t* p, size_t n);
#if defined(__x86_64__)
// Three interleaved streams of SSE4.2's crc32 instruction.
uint32_t crc32_3way(uint32_t crc, const uint8_t* p, size_t n);
// Carry-less multiply folding with AVX-512's VPCLMULQDQ (crc32c_clmul.cpp).
uint32_t vpclmul(uint32_t crc, const uint8_t* p, size_t n);
#endif

// Every implementation this CPU can run, slowest first.
std::vector<Impl> usable();

}  // namespace obd::crc32c_impl
