// The digest check of a downloaded blob: "sha256:<64 lowercase hex>" of a
// whole File, as OCI names the blob (OpenSSL's EVP).
#pragma once
#include <functional>
#include <string>

#include "io/file.h"

namespace obd::download {

// Reads `file` from 0 to its end in `chunk` byte pieces. `keep_going` runs
// before each piece; when it returns false the hash stops with CLOSED.
Result<std::string> sha256_digest(File& file, size_t chunk, const std::function<bool()>& keep_going = nullptr);

}  // namespace obd::download
