// One attempt at one layer's download (internal to the Downloader): use an
// existing dir/overlaybd.commit, or fetch the blob's missing blocks into
// dir/.download, check its digest and publish it as dir/overlaybd.commit;
// then switch the layer's reads to it.
//
// The local file holds the very bytes of the blob (digest-verified), so the
// switch happens below everything that interprets them: the tar wrapper
// offsets and ZFile/LSMT readers opened over the SwitchableFile stay valid
// and need no re-detection (upstream re-opens the layer stack instead).
#pragma once
#include <cstdint>
#include <string>

#include "download/downloader.h"

namespace obd::download {

// What an attempt needs from the thread that runs it.
class JobControl {
 public:
  virtual ~JobControl() = default;
  // Waits while paused; false once stopped.
  virtual bool proceed() = 0;
  // Waits until the rate limit allows `bytes`; false once stopped.
  virtual bool throttle(uint64_t bytes) = 0;
  // `done_bytes` of the blob are in dir/.download.
  virtual void progress(uint64_t done_bytes) = 0;
};

// OK: the layer reads the local file (`*how` says which path). On failure
// `*final` says that another attempt cannot help (the blob itself is wrong).
Status run_attempt(const DownloadJob& job, const DownloadOptions& opts, JobControl& ctl, bool* final,
                   std::string* how);

// Bytes per source read: several blocks (4 MiB), at most one second of the rate limit.
uint64_t fetch_bytes(const DownloadOptions& opts);

}  // namespace obd::download
