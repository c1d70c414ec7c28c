// File: the random-access byte source every layer reads from and writes to.
// Implementations: local files (pread or io_uring engine), memory, views
// (tar payload), ZFile (decompressing), LSMT layers and stacks. Later: remote
// registry blobs behind a local cache. Composition by wrapping, as upstream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"

namespace obd {

// One read of a batch. `done` receives the bytes read (short only at EOF).
struct ReadReq {
  void* buf;
  size_t len;
  uint64_t off;
  size_t done = 0;
};

// A byte range [off, off+len) of a file.
struct Extent {
  uint64_t off;
  uint64_t len;
};

class File {
 public:
  virtual ~File() = default;
  // Names the file in error messages.
  virtual const std::string& name() const = 0;
  virtual Result<uint64_t> size() = 0;
  // Reads up to `len` bytes at `off`; fewer only at end of file.
  virtual Result<size_t> pread(void* buf, size_t len, uint64_t off) = 0;
  // Reads several ranges; an engine may submit them together (io_uring).
  virtual Status pread_batch(std::span<ReadReq> reqs);
  // Writes all of `len` bytes or fails.
  virtual Status pwrite(const void* buf, size_t len, uint64_t off);
  // Deallocates a range; it reads back as zeros (size is kept).
  virtual Status punch_hole(uint64_t off, uint64_t len);
  virtual Status truncate(uint64_t size);
  virtual Status sync();
  // Allocated ranges at or after `from` (SEEK_DATA/SEEK_HOLE), in order.
  virtual Result<std::vector<Extent>> data_extents(uint64_t from);
  // Drops any cached copy of [off, off+len) so the next read fetches it again
  // (a reader above found it corrupt). Files that keep no cache refuse with
  // ENOTSUP; views pass it through shifted.
  virtual Status invalidate(uint64_t off, uint64_t len);

  // Takes a non-blocking advisory lock (flock) held until the file closes:
  // a conflicting lock on another open of the file, in this process or any
  // other, fails with EBUSY. Files without locks (memory, views) refuse.
  virtual Status try_lock(bool exclusive);

  // Reads exactly `len` bytes or fails with `truncated_code`, naming `what`.
  Status read_exact(void* buf, size_t len, uint64_t off, Code truncated_code, const char* what);
};

using FilePtr = std::shared_ptr<File>;

enum class IoEngine { kPsync = 0, kIoUring = 1 };

enum class OpenMode { kRead, kReadWrite, kCreateExclusive, kCreateTruncate };

// Opens a local file through the given engine. io_uring falls back to psync
// when the kernel refuses a ring (seccomp, io_uring_disabled, old kernel).
// kRead accepts regular files only (layer inputs); the writable modes also
// accept block devices (an ext4 raw device). Opening never blocks: a FIFO is
// refused with EINVAL instead of hanging a worker thread.
Result<FilePtr> open_local(const std::string& path, OpenMode mode, IoEngine engine = IoEngine::kPsync);

// Engine used when a caller does not choose one (OBD_IO_ENGINE=psync|io_uring).
IoEngine default_io_engine();

// A growable in-memory file, for tests and small metadata.
FilePtr make_memory_file(std::string name, std::vector<uint8_t> bytes = {});

// The one offset view: offset 0 of the view is `base` of `inner`.
// Read-only window [base, base+len) (a tar payload being read):
FilePtr make_view(FilePtr inner, uint64_t base, uint64_t len, std::string name);
// Writable and unbounded: size is the inner size past `base`; writes,
// punch_hole, truncate and sync pass through shifted (a tar payload being written).
FilePtr make_shifted(FilePtr inner, uint64_t base);

}  // namespace obd
