// mkfs: a fresh ext4 filesystem on an empty device (the bottom writable layer
// of an image), laid out like upstream overlaybd's user-space mkfs, plus an
// internal journal. Deterministic: the same options and device size give the
// same bytes.
#pragma once
#include <cstdint>
#include <string>

#include "common/status.h"
#include "ext4/fs.h"
#include "io/file.h"

namespace obd::ext4 {

struct MkfsOptions {
  // Filesystem uuid and directory hash seed are derived from this string.
  // Empty: derived from the device size alone.
  std::string seed;
  bool journal = true;
  std::string label;  // at most 16 bytes
  uint32_t inode_size = 256;
  uint32_t bytes_per_inode = 16384;
  // Bytes of the device to use; 0 = all of it.
  uint64_t size = 0;
  // Channel cache, sync, and `now`: every timestamp mkfs writes
  // (superblock, root, lost+found, journal).
  FsOptions fs;
};

Status mkfs(FilePtr dev, const MkfsOptions& opts);

// The 16-byte uuid and hash seed derived from a seed string (exposed for tests).
void derive_ids(const std::string& seed, uint8_t uuid[16], uint8_t hash_seed[16]);

}  // namespace obd::ext4
