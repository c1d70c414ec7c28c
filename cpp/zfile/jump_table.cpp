#include "zfile/jump_table.h"

#include <algorithm>

namespace obd::zfile {

namespace {

// log2 of the largest power of two not above `n` (n >= 1).
uint32_t floor_log2(uint32_t n) { return 31u - uint32_t(__builtin_clz(n)); }

}  // namespace

JumpTable::JumpTable(uint64_t first_offset, uint32_t max_len, uint64_t nblocks)
    : shift_(floor_log2(1 + 65535u / std::max<uint32_t>(max_len, 1))), max_len_(max_len) {
  bases_.reserve((nblocks >> shift_) + 1);
  deltas_.reserve(nblocks + 1);
  add_offset(first_offset);
}

void JumpTable::add_offset(uint64_t off) {
  if ((deltas_.size() & ((uint64_t(1) << shift_) - 1)) == 0) bases_.push_back(off);
  deltas_.push_back(uint16_t(off - bases_.back()));
  end_ = off;
}

void JumpTable::push(uint32_t len) {
  max_seen_ = std::max(max_seen_, len);
  add_offset(end_ + len);
}

}  // namespace obd::zfile
