// ByteStream: a forward-only byte source for OCI layer blobs. Layers arrive
// from pipes, registry downloads and local files, so nothing here seeks.
// A decompressing stream sits on top of a raw one and picks gzip, zstd or
// plain from the first bytes, as containerd's DecompressStream does.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "io/file.h"

namespace obd {

class ByteStream {
 public:
  virtual ~ByteStream() = default;
  // Reads up to `n` bytes; may return fewer. 0 means the end of the stream.
  virtual Result<size_t> read(void* buf, size_t n) = 0;
  // Bytes taken from the underlying source so far (compressed bytes for a
  // decompressing stream), for progress reports.
  virtual uint64_t consumed() const = 0;
  // Names the source in error messages.
  virtual const std::string& name() const = 0;
};

using ByteStreamPtr = std::unique_ptr<ByteStream>;

// Reads until `n` bytes or the end; returns the count (short only at the end).
Result<size_t> read_full(ByteStream& s, void* buf, size_t n);

// A stream over a file descriptor (file, pipe, FIFO, socket). Retries EINTR.
// With `own`, the descriptor is closed with the stream.
ByteStreamPtr make_fd_stream(int fd, std::string name, bool own);

// Opens `path` for reading ("-" is standard input, not closed).
Result<ByteStreamPtr> open_path_stream(const std::string& path);

// A stream reading `file` from offset 0 to its end.
ByteStreamPtr make_file_stream(FilePtr file);

// A stream over caller-owned memory that must outlive it (fuzzers, tests).
ByteStreamPtr make_memory_stream(const void* data, size_t len, std::string name);

enum class Compression { kNone, kGzip, kZstd };
const char* compression_name(Compression c);

// Wraps `inner` in a decoder chosen by magic: 1f 8b gzip, 28 b5 2f fd zstd,
// anything else (including an empty stream) passes through unchanged.
// Reads the first bytes of `inner` to decide.
Result<ByteStreamPtr> make_decompressing_stream(ByteStreamPtr inner, Compression* detected = nullptr);

}  // namespace obd
