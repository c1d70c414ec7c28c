// The block-device contract every frontend (FUSE file + loop, TCMU, ublk)
// adapts to: one asynchronous submit(op, offset, length, buffers) with a
// completion called exactly once. Frontends stay thin; queueing, threads and
// the image stack live behind this interface (cf. SPDK's bdev modules).
#pragma once
#include <sys/uio.h>

#include <functional>
#include <memory>
#include <span>

#include "common/status.h"
#include "image/image.h"

namespace obd {

enum class IoOp { kRead, kWrite, kDiscard, kFlush };

struct IoRequest {
  IoOp op = IoOp::kRead;
  uint64_t offset = 0;           // bytes
  uint64_t length = 0;           // bytes (0 for flush)
  std::span<const iovec> iov{};  // read/write buffers, `length` bytes in all; owned by the caller until completion
};

// Called once per request, on a device thread. Must not block for long.
using IoCompletion = std::function<void(const Status&)>;

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual uint64_t size() const = 0;
  virtual uint32_t block_size() const { return 512; }
  virtual bool read_only() const = 0;
  virtual bool supports(IoOp op) const = 0;
  virtual void submit(const IoRequest& req, IoCompletion done) = 0;
  // Waits for every submitted request to complete (frontend teardown).
  virtual void drain() = 0;
};

// Serves an Image with `threads` workers (at least 1).
std::unique_ptr<BlockDevice> make_image_device(ImagePtr image, unsigned threads);

}  // namespace obd
