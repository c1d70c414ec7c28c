#include "frontend/ublk/wire.h"

#include <cerrno>
#include <cstring>

namespace obd::frontend::ublk {

constexpr unsigned kSectorShift = 9;

Status check_shape(const DeviceShape& s) {
  if (s.queues < 1 || s.queues > 64) return Status(Code::kEINVAL, "ublk: queues must be 1..64, got " + std::to_string(s.queues));
  if (s.depth < 1 || s.depth > UBLK_MAX_QUEUE_DEPTH)
    return Status(Code::kEINVAL, "ublk: queue depth must be 1..4096, got " + std::to_string(s.depth));
  if (s.max_io_bytes < 4096 || s.max_io_bytes % 4096 || s.max_io_bytes > (32u << 20))
    return Status(Code::kEINVAL, "ublk: max I/O bytes must be a multiple of 4096 up to 32 MiB, got " +
                                     std::to_string(s.max_io_bytes));
  return Status::ok();
}

ublksrv_ctrl_dev_info make_dev_info(const DeviceShape& s, int dev_id, int pid) {
  ublksrv_ctrl_dev_info info;
  std::memset(&info, 0, sizeof info);
  info.nr_hw_queues = s.queues;
  info.queue_depth = s.depth;
  info.max_io_buf_bytes = s.max_io_bytes;
  info.dev_id = static_cast<uint32_t>(dev_id);
  info.ublksrv_pid = pid;
  info.flags = UBLK_F_CMD_IOCTL_ENCODE | UBLK_F_USER_RECOVERY | UBLK_F_USER_RECOVERY_REISSUE;
  return info;
}

ublk_params make_params(uint64_t size_bytes, bool read_only, uint32_t max_io_bytes) {
  ublk_params p;
  std::memset(&p, 0, sizeof p);
  p.len = sizeof p;
  p.types = UBLK_PARAM_TYPE_BASIC;
  p.basic.attrs = read_only ? UBLK_ATTR_READ_ONLY : UBLK_ATTR_VOLATILE_CACHE;
  p.basic.logical_bs_shift = 9;
  p.basic.physical_bs_shift = 12;
  p.basic.io_opt_shift = 12;
  p.basic.io_min_shift = 9;
  p.basic.max_sectors = max_io_bytes >> kSectorShift;
  p.basic.dev_sectors = size_bytes >> kSectorShift;
  if (!read_only) {
    p.types |= UBLK_PARAM_TYPE_DISCARD;
    p.discard.discard_granularity = 4096;
    p.discard.max_discard_sectors = 1u << 21;  // 1 GiB per request
    p.discard.max_write_zeroes_sectors = 1u << 21;
    p.discard.max_discard_segments = 1;
  }
  return p;
}

off_t desc_offset(unsigned q) {
  return UBLKSRV_CMD_BUF_OFFSET + static_cast<off_t>(q) * UBLK_MAX_QUEUE_DEPTH * sizeof(ublksrv_io_desc);
}

size_t desc_length(unsigned depth, size_t page) {
  size_t n = depth * sizeof(ublksrv_io_desc);
  return (n + page - 1) / page * page;
}

bool decode(const ublksrv_io_desc& d, void* buf, uint32_t buf_bytes, IoRequest& req, iovec& iov) {
  req.offset = d.start_sector << kSectorShift;
  req.length = static_cast<uint64_t>(d.nr_sectors) << kSectorShift;
  req.iov = nullptr;
  req.iovcnt = 0;
  req.may_unmap = false;
  switch (ublksrv_get_op(&d)) {
    case UBLK_IO_OP_READ:
    case UBLK_IO_OP_WRITE:
      if (req.length > buf_bytes) return false;
      req.op = ublksrv_get_op(&d) == UBLK_IO_OP_READ ? IoOp::kRead : IoOp::kWrite;
      iov = {buf, req.length};
      req.iov = &iov;
      req.iovcnt = 1;
      return true;
    case UBLK_IO_OP_FLUSH:
      req.op = IoOp::kFlush;
      req.offset = req.length = 0;
      return true;
    case UBLK_IO_OP_DISCARD:
      req.op = IoOp::kDiscard;
      return true;
    case UBLK_IO_OP_WRITE_ZEROES:
      req.op = IoOp::kWriteZeroes;
      req.may_unmap = !(d.op_flags & UBLK_IO_F_NOUNMAP);
      return true;
    default:
      return false;
  }
}

int32_t commit_result(const IoRequest& req, bool ok) {
  if (!ok) return -EIO;
  if (req.op == IoOp::kRead || req.op == IoOp::kWrite) return static_cast<int32_t>(req.length);
  return 0;
}

}  // namespace obd::frontend::ublk
