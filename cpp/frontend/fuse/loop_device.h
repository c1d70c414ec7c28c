// Loop devices over a file, by ioctl: what `losetup --find --show
// --direct-io=on [--read-only] FILE` and `losetup -d DEV` do, without a
// process each (the spawn was a quarter of a FUSE attach's time).
#pragma once
#include <string>

#include "common/status.h"

namespace obd::frontend::fuse {

struct LoopOptions {
  bool read_only = false;
  bool direct_io = true;  // the page cache stays the filesystem's; the FUSE file has none to share
};

// Binds a free loop device to `file` and returns its path (/dev/loopN).
Result<std::string> loop_attach(const std::string& file, const LoopOptions& opts);

// Unbinds `device` (LOOP_CLR_FD). A device still open or mounted is
// detached by the kernel once its last user closes it, as losetup -d does.
Status loop_detach(const std::string& device);

}  // namespace obd::frontend::fuse
