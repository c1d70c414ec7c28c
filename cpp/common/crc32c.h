// Raw CRC-32C register update, as overlaybd uses it: polynomial 0x82F63B78
// (reflected), no initial and no final inversion (what x86 `crc32` computes).
// Standard CRC-32C would be crc32c_update(~0u, p, n) ^ ~0u; overlaybd never uses it.
#pragma once
#include <cstddef>
#include <cstdint>

namespace obd {

uint32_t crc32c_update(uint32_t crc, const void* data, size_t len);

// Register start for ZFile per-block checksums.
constexpr uint32_t kZFileBlockCrcSeed = 100007;

}  // namespace obd
