// The in-memory jump table (format spec §3.4): where each stored block starts.
// On disk it is one u32 length per block; in memory one u64 base per group of
// blocks plus a u16 delta per block, about 2.5 bytes per block instead of 8.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace obd::zfile {

class JumpTable {
 public:
  JumpTable() = default;
  // `max_len` bounds every stored length; groups (a power of two blocks) are
  // sized so that deltas (at most (group-1) * max_len) always fit 16 bits,
  // whatever the block size (upstream's fixed 65536/block_size grouping
  // breaks on stored blocks above 64 KiB).
  JumpTable(uint64_t first_offset, uint32_t max_len, uint64_t nblocks);

  // Appends the next block's stored length (caller checked len <= max_len).
  void push(uint32_t len);

  uint64_t size() const { return deltas_.size() - 1; }  // blocks
  // Start of block i's stored bytes; offset(size()) is the end of the last block.
  // Several per read, so a shift rather than a division.
  uint64_t offset(uint64_t i) const { return bases_[i >> shift_] + deltas_[i]; }
  uint32_t length(uint64_t i) const { return uint32_t(offset(i + 1) - offset(i)); }
  uint64_t end() const { return end_; }
  uint32_t max_length() const { return max_seen_; }

 private:
  void add_offset(uint64_t off);

  uint32_t shift_ = 0;  // log2 of the blocks per group
  uint32_t max_len_ = 0;
  uint32_t max_seen_ = 0;
  uint64_t end_ = 0;
  std::vector<uint64_t> bases_;
  std::vector<uint16_t> deltas_;
};

}  // namespace obd::zfile
