// The optional tar shell around a layer blob (format spec §1 and §8): one
// regular file inside a POSIX ustar archive, optionally preceded by a pax
// extended header carrying its size. Readers unwrap it; `-t` writers add it.
#pragma once
#include <cstdint>

#include "io/file.h"

namespace obd {

constexpr uint64_t kTarBlock = 512;
// Where the payload starts when a pax header precedes the entry (what we write).
constexpr uint64_t kTarPaxPayloadOffset = 3 * kTarBlock;

// How a blob was wrapped, for diagnostics and `info`.
struct TarWrapInfo {
  bool wrapped = false;   // false: the blob is not a tar, payload = blob
  bool pax = false;       // the first entry is a pax 'x' header
  uint64_t payload_offset = 0;
  uint64_t payload_size = 0;
};

// True when the 512 bytes at `hdr` are a ustar header (magic "ustar\0",
// version "00") with a valid checksum.
bool is_ustar_header(const uint8_t* hdr);

// Locates the payload without opening it. A blob that is not a tar (or is
// shorter than one block) yields wrapped = false and the whole blob.
Result<TarWrapInfo> probe_tar(File& blob);

// Returns a read-only view of the payload, or `blob` itself when it is not a tar.
Result<FilePtr> unwrap_tar(FilePtr blob);

// Writer for `-t`: the payload goes at kTarPaxPayloadOffset of `out`. The
// returned file maps offset 0 to that position (reads, writes, truncate).
Result<FilePtr> tar_wrap_begin(FilePtr out);
// Writes the pax header, its record, the entry header (`mode` formatted as
// the file mode, e.g. 0100644) and the two closing zero blocks, and cuts
// `out` to the archive's end.
Status tar_wrap_finish(FilePtr out, uint64_t payload_len, uint32_t mode);

}  // namespace obd
