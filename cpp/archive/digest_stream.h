// Digest-checked streams for OCI layer blobs: the sha256 of the compressed
// bytes (the blob digest) and of the uncompressed tar (the diff_id) are
// computed as the layer flows into the tar reader, and checked at the end.
#pragma once
#include <string>

#include "archive/byte_stream.h"

namespace obd {

// Passes `inner` through, hashing it; at its end, instead of ending, fails
// with DIGEST_MISMATCH naming `what` and both digests when the sha256 is not
// `expected` ("sha256:<64 hex>"; empty: no check).
Result<ByteStreamPtr> make_digest_stream(ByteStreamPtr inner, std::string expected, std::string what);

struct LayerDigests {
  std::string digest;   // of the compressed blob
  std::string diff_id;  // of the uncompressed tar
};

// The uncompressed tar of a layer blob (gzip, zstd or plain, by magic), with
// both digests checked: blob digest → decompress → diff_id.
Result<ByteStreamPtr> make_verified_layer_stream(ByteStreamPtr blob, const LayerDigests& want, const std::string& what,
                                                 Compression* detected = nullptr);

}  // namespace obd
