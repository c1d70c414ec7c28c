// Background download of an image's remote layers (format spec §6.3): after
// a delay, each layer's blob is copied into its directory, checked against
// its digest, published as `dir/overlaybd.commit`, and the layer's reads
// switch from the registry to that local file.
#pragma once
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "download/switchable_file.h"
#include "io/file.h"

namespace obd::download {

// config.v1.json `download` (§5.1/§5.2), plus the pause between attempts.
struct DownloadOptions {
  uint32_t delay_s = 300;        // wait before the first job...
  uint32_t delay_extra_s = 30;   // ...plus a random 0..delay_extra_s-1 seconds
  uint32_t max_mbps = 100;       // MiB per second over all jobs; 0 = unlimited
  uint32_t try_cnt = 5;          // attempts per job
  uint32_t block_size = 262144;  // unit written and resumed
  IoEngine engine = default_io_engine();  // for reading the local file once switched
  uint32_t retry_pause_ms = 1000;         // before attempt 2; doubles, at most 30 s
};

struct DownloadJob {
  uint32_t layer;      // position in the image's lowers (events name it)
  std::string digest;  // "sha256:<hex>" of the blob
  uint64_t size;       // blob size in bytes
  std::string dir;     // the layer directory: dir/.download, dir/overlaybd.commit
  FilePtr source;      // the blob in the registry (pread = HTTP range GET)
  std::shared_ptr<SwitchableFile> target;  // switched to the local file when done (may be null)
};

enum class DownloadState { kWaiting, kRunning, kDone, kFailed, kCancelled };

// Progress (kRunning, after every source read: upstream's `bk_download`
// audit), kDone, kFailed (`message` says why; the layer keeps reading
// remotely) and kCancelled. `message` is null or valid during the call only.
struct DownloadEvent {
  uint32_t layer;
  DownloadState state;
  uint64_t done_bytes, total_bytes;
  const std::string* message;
};

class DownloadObserver {
 public:
  virtual ~DownloadObserver() = default;
  // Called on the download thread; must not block.
  virtual void on_download(const DownloadEvent&) = 0;
};

// One per image: a thread that runs the jobs in order after the delay.
class Downloader {
 public:
  static std::unique_ptr<Downloader> start(DownloadOptions, std::vector<DownloadJob>,
                                           std::shared_ptr<DownloadObserver> = nullptr);
  ~Downloader();  // stop()
  Downloader(const Downloader&) = delete;
  Downloader& operator=(const Downloader&) = delete;

  // Cancels promptly (in the delay, between chunks, in a throttle or retry
  // pause; a source read in flight finishes first) and joins the thread. A
  // partial dir/.download stays for the next run to resume.
  void stop();
  // While paused no chunk is fetched (§6.3: suppressed while a trace is recorded).
  void pause(bool paused);
  // True once every job finished (done, failed or cancelled) within `timeout`.
  bool wait_for(std::chrono::milliseconds timeout);
  std::vector<DownloadState> states() const;

  struct Shared;  // the state the thread shares with callers (downloader.cpp)

 private:
  Downloader() = default;
  std::shared_ptr<Shared> shared_;
  std::thread thread_;
};

}  // namespace obd::download
