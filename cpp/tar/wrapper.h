// The optional tar shell around a layer blob (format spec §1 and §8): one
// regular file inside a POSIX ustar archive, optionally preceded by a pax
// extended header carrying its size. Readers unwrap it; `-t` writers add it.
// Headers are read and written with the shared codec (header.h).
#pragma once
#include <cstdint>

#include "io/file.h"
#include "tar/header.h"

namespace obd::tar {

// Where the payload starts when a pax header precedes the entry (what we write).
constexpr uint64_t kPaxPayloadOffset = 3 * kBlock;

// How a blob was wrapped, for diagnostics and `info`.
struct WrapInfo {
  bool wrapped = false;   // false: the blob is not a tar, payload = blob
  bool pax = false;       // the first entry is a pax 'x' header
  uint64_t payload_offset = 0;
  uint64_t payload_size = 0;
};

// True when the 512 bytes at `hdr` are a POSIX ustar header (magic
// "ustar\0", version "00") with a valid checksum.
bool is_ustar_header(const uint8_t* hdr);

// Locates the payload without opening it. A blob that is not a tar (or is
// shorter than one block) yields wrapped = false and the whole blob.
Result<WrapInfo> probe(File& blob);

// A read-only view of the payload described by `info` (`blob` itself when
// it is not wrapped).
FilePtr payload_of(FilePtr blob, const WrapInfo& info);

// Writer for `-t`: the payload goes at kPaxPayloadOffset of `out`. The
// returned file maps offset 0 to that position (reads, writes, truncate).
Result<FilePtr> wrap_begin(FilePtr out);
// Writes the pax header, its record, the entry header (`mode` formatted as
// the file mode, e.g. 0100644) and the two closing zero blocks, and cuts
// `out` to the archive's end.
Status wrap_finish(FilePtr out, uint64_t payload_len, uint32_t mode);

}  // namespace obd::tar
