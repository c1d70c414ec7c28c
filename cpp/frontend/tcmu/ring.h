// The TCMU command ring as <linux/target_core_user.h> lays it out in the
// UIO mapping: a mailbox, then the command ring (cmdr_off, cmdr_size), then
// the data area that entries' iovecs point into (as offsets from the start
// of the mapping).
//
// The kernel queues entries and moves cmd_head; we copy each new entry out
// (next), and complete commands by writing a response into the entry at
// cmd_tail and moving cmd_tail past it (complete), as libtcmu does. The
// kernel finds the command by the cmd_id written there, so completions may
// come in any order, and entries are copied before any completion can
// overwrite them.
//
// A Ring starts fetching at cmd_tail. After a handler restart that is
// right when the earlier process completed in order (process_ring does):
// the commands it left unanswered are fetched again. Otherwise the handler
// resets the ring first through configfs (`action/reset_ring` = 1, as
// libtcmu: the kernel fails the commands in flight with BUSY, which the
// initiator retries, and sets head and tail to 0).
#pragma once
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

#include "common/status.h"
#include "frontend/tcmu/scsi.h"

namespace obd::frontend::tcmu {

constexpr size_t kMaxCdbLen = 260;  // a variable-length CDB: 8 + 252

// One fetched SCSI command.
struct RingCommand {
  uint16_t cmd_id = 0;
  uint8_t cdb[kMaxCdbLen] = {};
  size_t cdb_len = 0;
  std::vector<iovec> iov;  // pointers into the mapping's data area
  // Set when the entry points outside the mapping; complete() reports it
  // as a hardware error instead of running the command.
  bool malformed = false;
};

class Ring {
 public:
  // Checks the mailbox (version 2, command ring inside the mapping).
  static Result<Ring> attach(void* map, size_t map_len);

  // Copies the next entry the kernel queued and we have not fetched yet;
  // false when there is none. PAD and TMR entries are stepped over. An
  // entry whose length breaks the ring fails with EIO (the ring is broken).
  Result<bool> next(RingCommand& cmd);

  // Writes `res` for fetched command `cmd` into the entry at cmd_tail and
  // advances cmd_tail. Each fetched command is completed exactly once.
  void complete(const RingCommand& cmd, const ScsiResult& res);

  // Fetched commands not completed yet.
  size_t in_flight() const { return in_flight_; }

  // The kernel has entries past cmd_tail: right after attach, ones an
  // earlier handler left in a state we cannot know (see above).
  bool pending() const { return head() != tail(); }

 private:
  Ring(uint8_t* map, size_t map_len, uint32_t cmdr_off, uint32_t cmdr_size, uint32_t tail);
  uint32_t head() const;
  uint32_t tail() const;
  void set_tail(uint32_t v);
  uint8_t* entry(uint32_t pos) const { return map_ + cmdr_off_ + pos; }
  // Length of the entry at `pos` if it is sane, else 0.
  uint32_t entry_len(uint32_t pos) const;
  bool read_len_supported() const;

  uint8_t* map_;
  size_t map_len_;
  uint32_t cmdr_off_;
  uint32_t cmdr_size_;
  uint32_t fetch_;  // next entry to fetch
  size_t in_flight_ = 0;
};

// Fetches every waiting command, executes it on `disk` and completes it;
// then calls `notify` once if anything completed (in production: write 4
// bytes to the UIO fd). Returns the count completed.
Result<size_t> process_ring(Ring& ring, const DiskInfo& disk, BlockIo& io, const std::function<void()>& notify);

}  // namespace obd::frontend::tcmu
