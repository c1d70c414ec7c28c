// Reading a ZFile: a read-only File of the decompressed content, with random
// pread. Safe for concurrent pread from several threads (no shared mutable
// state after open; the source file must allow concurrent pread too).
#pragma once
#include "io/file.h"

namespace obd {

// True when the file starts with a ZFile header (magic and header flag); the
// rest is checked by open_zfile.
Result<bool> is_zfile(File& f);

// Validates header, trailer and jump table, then serves reads. Each request
// reads its blocks' stored bytes with one pread, verifies per-block CRCs
// (when the file has them) before decompressing. A batch (pread_batch) reads
// and decompresses each block once, however many of its requests want it.
Result<FilePtr> open_zfile(FilePtr src);

}  // namespace obd
