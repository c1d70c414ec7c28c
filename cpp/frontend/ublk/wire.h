// The pure parts of the ublk protocol, kept apart from the kernel so they
// can be unit-tested: the ADD_DEV and SET_PARAMS payloads, where a queue's
// descriptors sit in /dev/ublkcN, and an I/O descriptor turned into a
// BlockDevice request.
#pragma once
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

#include "common/status.h"
#include "device/block_device.h"
#include "frontend/ublk/uapi.h"

namespace obd::frontend::ublk {

struct DeviceShape {
  uint16_t queues = 1;
  uint16_t depth = 64;
  uint32_t max_io_bytes = 512 << 10;
};

// Checks a shape against the driver's limits (queues ≥ 1, depth 1..4096,
// buffers a multiple of 4 KiB).
Status check_shape(const DeviceShape& shape);

// ADD_DEV payload; dev_id -1 lets the kernel choose. Devices outlive their
// server (user recovery, in-flight requests reissued) so a restarted
// service can take them over.
ublksrv_ctrl_dev_info make_dev_info(const DeviceShape& shape, int dev_id, int pid);

// SET_PARAMS payload: 512-byte logical and 4 KiB physical blocks, a
// volatile cache (so flushes reach us), read-only or discard-capable.
ublk_params make_params(uint64_t size_bytes, bool read_only, uint32_t max_io_bytes);

// The mmap offset and length of queue `q`'s descriptor array.
off_t desc_offset(unsigned q);
size_t desc_length(unsigned depth, size_t page_size);

// Fills `req` (op, range, the tag's buffer) from descriptor `d`; false for
// an operation we do not serve or a transfer larger than the buffer.
bool decode(const ublksrv_io_desc& d, void* buf, uint32_t buf_bytes, IoRequest& req, iovec& iov);

// What COMMIT_AND_FETCH reports: bytes moved for reads and writes, 0 for the
// rest, -EIO for any failure (the kernel then fails the bio, never waits).
int32_t commit_result(const IoRequest& req, bool ok);

}  // namespace obd::frontend::ublk
