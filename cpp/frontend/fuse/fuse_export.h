// A FUSE mount that exposes one BlockDevice as one regular file, for the
// loop driver to attach (`losetup --direct-io=on`) where the kernel has
// neither TCMU nor ublk. Requests are served on libfuse's session threads,
// each taking an IoQueue from a small pool, so no JavaScript is involved.
#pragma once
#include <memory>
#include <string>

#include "common/status.h"
#include "device/block_device.h"

namespace obd::frontend::fuse {

struct ExportOptions {
  std::string file_name = "disk";
  // libfuse session threads (each may own one queue). A loop device at queue
  // depth 32 keeps that many reads in flight; in interleaved device-bench
  // runs 16 threads did better than 4 or 8, even on 2 CPUs.
  unsigned max_threads = 16;
  // One /dev/fuse descriptor per thread: replies do not share a file.
  bool clone_fd = true;
};

class Export {
 public:
  virtual ~Export() = default;
  // The exported file: <mount dir>/<file_name>.
  virtual const std::string& file() const = 0;
  // Unmounts, aborts requests still queued in the kernel (a loop device left
  // attached gets EIO instead of hanging), joins the session threads and
  // closes the device. Idempotent; blocks until done.
  virtual void close() = 0;
};

// Mounts the device's file on `mount_dir` (an existing empty directory) and
// starts serving it. The export closes on destruction.
Result<std::unique_ptr<Export>> start_export(std::shared_ptr<BlockDevice> dev, const std::string& mount_dir,
                                             const ExportOptions& opts = {});

}  // namespace obd::frontend::fuse
