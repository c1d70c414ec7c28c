// apply_layer: applies one OCI layer (plain, gzip or zstd tar, read as a
// stream) onto the ext4 filesystem of a device, as containerd's apply does
// onto a directory: whiteouts delete, opaque markers hide lower contents,
// later entries replace earlier ones, paths resolve inside the root.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "archive/byte_stream.h"
#include "common/status.h"
#include "ext4/fs.h"
#include "ext4/mkfs.h"
#include "io/file.h"

namespace obd::ext4 {

struct ApplyProgress {
  uint64_t input_bytes = 0;  // bytes taken from the input (compressed)
  uint64_t tar_bytes = 0;    // uncompressed tar bytes parsed
  uint64_t entries = 0;      // tar entries applied
  bool done = false;
};

struct ApplyOptions {
  // Format the device first (the bottom layer of an image).
  bool mkfs = false;
  MkfsOptions mkfs_opts;
  // Channel cache, sync, and the fixed "now" libext2fs stamps on deletions
  // and the superblock.
  FsOptions fs;
  // Called on the applying thread, at most every progress_ms and once at
  // the end; must not block.
  std::function<void(const ApplyProgress&)> on_progress;
  uint32_t progress_ms = 200;
};

struct ApplyResult {
  uint64_t entries = 0;
  uint64_t tar_bytes = 0;
  uint64_t input_bytes = 0;
  uint64_t files = 0, dirs = 0, symlinks = 0, hardlinks = 0, specials = 0, whiteouts = 0;
  ChannelStats io;
};

// On failure the filesystem is still written back and consistent: the
// entries before the failing one are applied, a partly written file is
// removed. The device says "not clean" from the start until that write-back
// is complete, so an apply killed part way, or whose write-back failed (the
// host disk full), is never taken for a clean filesystem.
Result<ApplyResult> apply_layer(FilePtr dev, ByteStreamPtr input, const ApplyOptions& opts);
// `input` is a path, a FIFO, or "-" for standard input.
Result<ApplyResult> apply_layer(FilePtr dev, const std::string& input, const ApplyOptions& opts);

}  // namespace obd::ext4
