// Per-block compression (format spec §3.3): LZ4 raw blocks and one-shot zstd
// frames, exactly as upstream calls the libraries so output can match byte
// for byte (zstd always; LZ4 only with the same library version).
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "zfile/format.h"

namespace obd::zfile {

constexpr int kZstdLevel = 3;

// Worst-case compressed size of `n` raw bytes (what the library promises).
size_t compress_bound(Algorithm algo, size_t n);

// Compresses `n` bytes into `dst` (capacity at least compress_bound).
Result<size_t> compress_block(Algorithm algo, const uint8_t* src, size_t n, uint8_t* dst, size_t cap);

// Decompresses into exactly `want` bytes; any other outcome is an error
// (ZFILE_DECOMPRESS_FAILED, message completed by the caller).
Status decompress_block(Algorithm algo, const uint8_t* src, size_t n, uint8_t* dst, size_t want);

}  // namespace obd::zfile
