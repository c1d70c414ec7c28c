// Reads that must not wait on storage. A queue thread that serves a block
// device runs a read inline (no hand-off to a worker, no wakeups) inside a
// NoWaitScope: leaf files then read only what needs no I/O (page cache,
// memory) and refuse the rest with would_block(), and the caller hands the
// request to a thread that may wait. Files that wrap others pass the scope
// through untouched; files that would fetch (remote, cache fill) refuse.
#pragma once
#include <string>

#include "common/status.h"

namespace obd {

class NoWaitScope {
 public:
  NoWaitScope();
  ~NoWaitScope();
  NoWaitScope(const NoWaitScope&) = delete;
  NoWaitScope& operator=(const NoWaitScope&) = delete;
  // True when a file refused inside this scope: the result is a refusal to
  // retry where waiting is allowed, not an answer.
  bool refused() const;

 private:
  bool outer_active_;
  bool outer_refused_;
};

// True while the calling thread is inside a NoWaitScope.
bool nowait_active();

// What a file returns instead of waiting (EAGAIN); marks the scope refused.
Status would_block(const std::string& what);

}  // namespace obd
