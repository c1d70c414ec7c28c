// The one read loop of both prefetch modes: byte ranges of files read in
// pieces of at most 1 MiB by a few threads, only to warm the caches below.
#pragma once
#include <atomic>
#include <cstdint>
#include <span>

#include "io/file.h"

namespace obd::trace {

constexpr size_t kMaxPiece = 1 << 20;  // upstream's MAX_IO_SIZE

struct PrefetchStats {
  uint64_t reads = 0;   // pieces read in full
  uint64_t bytes = 0;   // bytes read
  uint64_t errors = 0;  // pieces that failed or came back short, ranges skipped
};

struct ReadJob {
  File* file;
  uint64_t off;
  uint64_t len;
};

// Reads every job in order of the list (a long one split into pieces) with
// `concurrency` threads (at least one). A failed piece is counted, never
// fatal. Stops taking pieces once *cancel is true.
PrefetchStats read_jobs(std::span<const ReadJob> jobs, unsigned concurrency, const std::atomic<bool>* cancel);

}  // namespace obd::trace
