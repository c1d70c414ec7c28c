// Whole-file ZFile operations used by the tools and the N-API bindings.
#pragma once
#include <cstdint>
#include <optional>

#include "io/file.h"
#include "zfile/format.h"
#include "zfile/writer.h"

namespace obd {

// Compresses all of `src` into `dst` (written from offset 0); returns the
// ZFile's size.
Result<uint64_t> zfile_compress(File& src, FilePtr dst, const ZFileOptions& opts);

// Writes the decompressed content of `zf` to `dst`, leaving all-zero blocks
// as holes, and sets dst's size to the content size.
Status zfile_decompress(File& zf, FilePtr dst);

// Checks every block's CRC (when present) and that it decompresses to its
// expected size.
Status zfile_verify(File& zf);

// Decoded header and trailer, for `info` and diagnostics.
struct ZFileInfo {
  zfile::Record header;
  zfile::Record trailer;
  bool header_overwritten = false;
  uint64_t file_size = 0;
  uint64_t nblocks = 0;
  uint64_t original_size = 0;
  uint64_t index_offset = 0;
  uint32_t block_size = 0;
  zfile::Algorithm algo = zfile::Algorithm::kLz4;
  bool verify = false;
  uint32_t max_stored_block = 0;
};
Result<ZFileInfo> zfile_info(File& zf);

}  // namespace obd
