#include "zfile/codec.h"

#include <lz4.h>
#include <zstd.h>

#include <climits>
#include <string>

namespace obd::zfile {
namespace {

// One context per thread: readers and compressing workers run concurrently,
// and creating a zstd context per block would dominate small-block costs.
struct ZstdContexts {
  ZSTD_CCtx* c = nullptr;
  ZSTD_DCtx* d = nullptr;
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
thread_local ZstdContexts tls_zstd;

}  // namespace

size_t compress_bound(Algorithm algo, size_t n) {
  if (algo == Algorithm::kZstd) return ZSTD_COMPRESSBOUND(n);
  return LZ4_COMPRESSBOUND(n);
}

Result<size_t> compress_block(Algorithm algo, const uint8_t* src, size_t n, uint8_t* dst, size_t cap) {
  if (algo == Algorithm::kLz4) {
    if (n > INT_MAX || cap > INT_MAX) return Status(Code::kEINVAL, "lz4 block too large");
    int r = LZ4_compress_default(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst), int(n), int(cap));
    if (r <= 0) return Status(Code::kINTERNAL, "LZ4_compress_default failed on a " + std::to_string(n) + "-byte block");
    return size_t(r);
  }
  if (algo == Algorithm::kZstd) {
    if (!tls_zstd.c && !(tls_zstd.c = ZSTD_createCCtx())) return Status(Code::kINTERNAL, "ZSTD_createCCtx failed");
    // Same as one-shot ZSTD_compress: content size in the frame, no checksum.
    size_t r = ZSTD_compressCCtx(tls_zstd.c, dst, cap, src, n, kZstdLevel);
    if (ZSTD_isError(r)) return Status(Code::kINTERNAL, std::string("ZSTD_compress failed: ") + ZSTD_getErrorName(r));
    return r;
  }
  return Status(Code::kENOTSUP, "unsupported compression algorithm " + std::to_string(int(algo)));
}

Status decompress_block(Algorithm algo, const uint8_t* src, size_t n, uint8_t* dst, size_t want) {
  if (algo == Algorithm::kLz4) {
    if (n > INT_MAX || want > INT_MAX) return Status(Code::kZFILE_DECOMPRESS_FAILED, "lz4 block too large");
    int r = LZ4_decompress_safe(reinterpret_cast<const char*>(src), reinterpret_cast<char*>(dst), int(n), int(want));
    if (r < 0) return Status(Code::kZFILE_DECOMPRESS_FAILED, "lz4 data is corrupt");
    if (size_t(r) != want) {
      return Status(Code::kZFILE_DECOMPRESS_FAILED,
                    "lz4 block decompressed to " + std::to_string(r) + " bytes, expected " + std::to_string(want));
    }
    return Status::ok();
  }
  if (algo == Algorithm::kZstd) {
    if (!tls_zstd.d && !(tls_zstd.d = ZSTD_createDCtx())) return Status(Code::kINTERNAL, "ZSTD_createDCtx failed");
    size_t r = ZSTD_decompressDCtx(tls_zstd.d, dst, want, src, n);
    if (ZSTD_isError(r)) {
      return Status(Code::kZFILE_DECOMPRESS_FAILED, std::string("zstd data is corrupt: ") + ZSTD_getErrorName(r));
    }
    if (r != want) {
      return Status(Code::kZFILE_DECOMPRESS_FAILED,
                    "zstd block decompressed to " + std::to_string(r) + " bytes, expected " + std::to_string(want));
    }
    return Status::ok();
  }
  return Status(Code::kENOTSUP, "unsupported compression algorithm " + std::to_string(int(algo)));
}

}  // namespace obd::zfile
