// A ByteStream read ahead on a thread of its own, so that the work of the
// stream below (pipe reads, inflate, a layer's two sha256s) overlaps with the
// work of its reader (the tar reader and the ext4 apply) on another core.
#pragma once
#include <cstddef>

#include "archive/byte_stream.h"

namespace obd {

// Reads `inner` in `chunk`-byte pieces, at most `chunks` of them ahead of the
// reader. The data and then the inner stream's end or error arrive in
// order. Destroying it early stops the thread at its next read of `inner`.
ByteStreamPtr make_readahead_stream(ByteStreamPtr inner, size_t chunk = 256 * 1024, size_t chunks = 8);

}  // namespace obd
