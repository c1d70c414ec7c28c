// Reading and validating a ZFile's header, trailer and jump table (format
// spec §3.4). Nothing read from disk is trusted: every size is checked
// against the file size and the format's limits before it is used.
#pragma once
#include <cstdint>

#include "io/file.h"
#include "zfile/format.h"
#include "zfile/jump_table.h"

namespace obd::zfile {

struct Layout {
  Record header;
  Record trailer;
  bool header_overwritten = false;  // index info was taken from the header
  // The effective parameters (from the header when overwritten, else trailer).
  Algorithm algo = Algorithm::kLz4;
  uint32_t block_size = 0;
  bool verify = false;
  bool digests = false;  // index_crc is valid
  uint64_t original_size = 0;
  uint64_t nblocks = 0;
  uint64_t index_offset = 0;
  uint32_t index_crc = 0;
  uint64_t data_offset = kRecordSize;
  uint64_t file_size = 0;
  // Largest stored length (compressed + CRC) a valid block can have.
  uint32_t max_stored = 0;

  // Raw size of block i (the last one may be partial).
  uint32_t raw_size(uint64_t i) const {
    return i + 1 < nblocks ? block_size : uint32_t(original_size - (nblocks - 1) * block_size);
  }
};

// Header, trailer and the checks that need no jump table.
Result<Layout> read_layout(File& f);

// Loads and validates the jump table (index CRC, each length, their sum).
Result<JumpTable> read_jump_table(File& f, const Layout& l);

}  // namespace obd::zfile
