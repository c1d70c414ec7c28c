// Command dispatch and the commands that move blocks: READ/WRITE (6, 10,
// 12, 16), SYNCHRONIZE CACHE, UNMAP and WRITE SAME. Every check that can
// fail on a bad CDB or buffer turns into sense data, never into I/O.
#include <algorithm>
#include <cstring>
#include <vector>

#include "device/iov.h"
#include "frontend/tcmu/scsi_wire.h"

namespace obd::frontend::tcmu {
namespace {

constexpr size_t kPatternChunk = 256 * 1024;  // WRITE SAME of a non-zero block, written in pieces

uint64_t block_count(const DiskInfo& disk) { return disk.size / kBlockSize; }

// READ and WRITE (6/10/12/16): the one list that both the dispatcher and
// the ring runner's planner go by.
struct RwOpcode {
  uint8_t op;
  bool write;
};
constexpr RwOpcode kRwOpcodes[] = {{0x08, false}, {0x28, false}, {0xa8, false}, {0x88, false},
                                   {0x0a, true},  {0x2a, true},  {0xaa, true},  {0x8a, true}};

const RwOpcode* find_rw_opcode(uint8_t op) {
  for (const RwOpcode& r : kRwOpcodes)
    if (r.op == op) return &r;
  return nullptr;
}

bool in_range(const DiskInfo& disk, uint64_t lba, uint64_t blocks) {
  uint64_t n = block_count(disk);
  return lba <= n && blocks <= n - lba;
}

ScsiResult io_failure(const Status& s, bool write) {
  ScsiResult r;
  switch (s.code()) {
    case Code::kEROFS:
      r = write_protected();
      break;
    case Code::kOUT_OF_RANGE:
      r = lba_out_of_range();
      break;
    case Code::kENOSPC:
      r = check_condition(SenseKey::kDataProtect, 0x27, 0x07);  // space allocation failed write protect
      break;
    default:
      // WRITE ERROR / UNRECOVERED READ ERROR: the block layer fails the I/O with EIO.
      r = check_condition(SenseKey::kMediumError, write ? 0x0c : 0x11, 0x00);
  }
  r.cause = s;
  return r;
}

ScsiResult run(BlockIo& io, IoRequest& req) {
  Status s = io.run(req);
  if (s) return {};
  return io_failure(s, req.op != IoOp::kRead);
}

ScsiResult flush(BlockIo& io) {
  IoRequest req{.op = IoOp::kFlush};
  return run(io, req);
}

struct Extent {
  uint64_t lba = 0;
  uint64_t blocks = 0;
};

// LBA and transfer length of READ/WRITE/SYNCHRONIZE CACHE/WRITE SAME by CDB size.
Extent decode_extent(std::span<const uint8_t> cdb) {
  switch (cdb.size()) {
    case 6: {
      uint32_t n = cdb[4];
      return {uint64_t(cdb[1] & 0x1f) << 16 | get_be16(&cdb[2]), n ? n : 256u};
    }
    case 10:
      return {get_be32(&cdb[2]), get_be16(&cdb[7])};
    case 12:
      return {get_be32(&cdb[2]), get_be32(&cdb[6])};
    default:
      return {get_be64(&cdb[2]), get_be32(&cdb[10])};
  }
}

ScsiResult read_write(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk, BlockIo& io) {
  RwPlan plan;
  ScsiResult res;
  if (plan_read_write(cdb, data, disk, plan, res) != RwStep::kSubmit) return res;
  Status s = io.run(plan.req);
  if (s && plan.fua) {
    IoRequest f{.op = IoOp::kFlush};
    s = io.run(f);
  }
  return read_write_result(plan, s);
}

ScsiResult synchronize_cache(std::span<const uint8_t> cdb, const DiskInfo& disk, BlockIo& io) {
  Extent e = decode_extent(cdb);
  if (!in_range(disk, e.lba, e.blocks)) return lba_out_of_range();
  return flush(io);  // the Image syncs as a whole
}

ScsiResult unmap(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk, BlockIo& io) {
  if (disk.read_only) return write_protected();
  if (cdb[1] & 0x01) return invalid_field_in_cdb();  // ANCHOR: not supported
  size_t len = get_be16(&cdb[7]);
  if (len == 0) return {};
  if (len < 8 || iov_total(data.data(), uint32_t(data.size())) < len) return param_list_length_error();
  std::vector<uint8_t> p(len);
  IovCursor(data.data(), uint32_t(data.size())).copy_out(p.data(), len);
  size_t desc_bytes = std::min<size_t>(get_be16(&p[2]), len - 8);
  size_t count = desc_bytes / 16;
  if (count > disk.max_unmap_descriptors) return invalid_field_in_param();
  uint64_t sum = 0;
  for (size_t i = 0; i < count; i++) {
    const uint8_t* d = &p[8 + 16 * i];
    uint64_t lba = get_be64(d), blocks = get_be32(d + 8);
    if (!in_range(disk, lba, blocks)) return lba_out_of_range();
    sum += blocks;
  }
  if (sum > disk.max_unmap_blocks) return invalid_field_in_param();
  for (size_t i = 0; i < count; i++) {
    const uint8_t* d = &p[8 + 16 * i];
    IoRequest req{.op = IoOp::kDiscard, .offset = get_be64(d) * kBlockSize, .length = uint64_t(get_be32(d + 8)) * kBlockSize};
    if (req.length == 0) continue;
    ScsiResult r = run(io, req);
    if (r.status != kStatusGood) return r;
  }
  return {};
}

ScsiResult write_same(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk, BlockIo& io) {
  if (disk.read_only) return write_protected();
  uint8_t flags = cdb[1];
  bool unmap_bit = flags & 0x08;
  bool ndob = cdb.size() == 16 && (flags & 0x01);
  // ANCHOR, PBDATA, LBDATA (and NDOB in the 10-byte form) are not supported.
  if (flags & (cdb.size() == 16 ? 0x16 : 0x17)) return invalid_field_in_cdb();
  Extent e = decode_extent(cdb);
  if (e.lba > block_count(disk)) return lba_out_of_range();
  if (e.blocks == 0) e.blocks = block_count(disk) - e.lba;  // WSNZ=0: up to the last LBA
  if (!in_range(disk, e.lba, e.blocks)) return lba_out_of_range();
  if (e.blocks > disk.max_write_same_blocks) return invalid_field_in_cdb();
  if (e.blocks == 0) return {};
  uint8_t block[kBlockSize] = {};
  if (!ndob) {
    if (iov_total(data.data(), uint32_t(data.size())) < kBlockSize) return invalid_field_in_cdb();
    IovCursor(data.data(), uint32_t(data.size())).copy_out(block, kBlockSize);
  }
  uint64_t off = e.lba * kBlockSize, bytes = e.blocks * kBlockSize;
  if (std::all_of(block, block + kBlockSize, [](uint8_t b) { return b == 0; })) {
    IoRequest req{.op = IoOp::kWriteZeroes, .may_unmap = unmap_bit, .offset = off, .length = bytes};
    return run(io, req);
  }
  // A pattern: the block repeated, written a chunk at a time.
  std::vector<uint8_t> chunk(std::min<uint64_t>(bytes, kPatternChunk));
  for (size_t i = 0; i < chunk.size(); i += kBlockSize) std::memcpy(&chunk[i], block, kBlockSize);
  for (uint64_t done = 0; done < bytes;) {
    uint64_t n = std::min<uint64_t>(chunk.size(), bytes - done);
    iovec v{chunk.data(), n};
    IoRequest req{.op = IoOp::kWrite, .offset = off + done, .length = n, .iov = &v, .iovcnt = 1};
    ScsiResult r = run(io, req);
    if (r.status != kStatusGood) return r;
    done += n;
  }
  return {};
}

}  // namespace

ScsiResult check_condition(SenseKey key, uint8_t asc, uint8_t ascq) {
  ScsiResult r;
  r.status = kStatusCheckCondition;
  r.sense[0] = 0x70;  // current error, fixed format
  r.sense[2] = uint8_t(key);
  r.sense[7] = kFixedSenseLen - 8;
  r.sense[12] = asc;
  r.sense[13] = ascq;
  return r;
}

size_t cdb_length(std::span<const uint8_t> cdb) {
  if (cdb.empty()) return 0;
  switch (cdb[0] >> 5) {
    case 0:
      return 6;
    case 1:
    case 2:
      return 10;
    case 4:
      return 16;
    case 5:
      return 12;
    case 3:
      // 0x7f: variable length, byte 7 counts the bytes after the first 8.
      if (cdb[0] == 0x7f && cdb.size() >= 8) return size_t(cdb[7]) + 8;
      return 0;
    default:
      return 0;  // vendor specific
  }
}

ScsiResult execute_cdb(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk,
                       BlockIo& io) {
  size_t len = cdb_length(cdb);
  if (len == 0 || cdb.size() < len) return invalid_opcode();
  cdb = cdb.first(len);
  if (find_rw_opcode(cdb[0])) return read_write(cdb, data, disk, io);
  switch (cdb[0]) {
    case 0x00:  // TEST UNIT READY
      return {};
    case 0x03:  // REQUEST SENSE
      return request_sense(cdb, data);
    case 0x12:  // INQUIRY
      return inquiry(cdb, data, disk);
    case 0x25:  // READ CAPACITY (10)
      return read_capacity10(data, disk);
    case 0x9e:  // SERVICE ACTION IN (16)
      if ((cdb[1] & 0x1f) == 0x10) return read_capacity16(cdb, data, disk);
      return invalid_field_in_cdb();
    case 0x1a:  // MODE SENSE (6)
    case 0x5a:  // MODE SENSE (10)
      return mode_sense(cdb, data, disk);
    case 0x35:
    case 0x91:  // SYNCHRONIZE CACHE (10/16)
      return synchronize_cache(cdb, disk, io);
    case 0x42:  // UNMAP
      return unmap(cdb, data, disk, io);
    case 0x41:
    case 0x93:  // WRITE SAME (10/16)
      return write_same(cdb, data, disk, io);
    default:
      return invalid_opcode();
  }
}

RwStep plan_read_write(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk, RwPlan& plan,
                       ScsiResult& res) {
  const RwOpcode* rw = cdb.empty() ? nullptr : find_rw_opcode(cdb[0]);
  if (!rw) return RwStep::kNotRw;
  plan.write = rw->write;
  size_t len = cdb_length(cdb);
  if (cdb.size() < len) {
    res = invalid_opcode();
    return RwStep::kDone;
  }
  cdb = cdb.first(len);
  res = {};
  if (plan.write && disk.read_only) {
    res = write_protected();
    return RwStep::kDone;
  }
  Extent e = decode_extent(cdb);
  if (!in_range(disk, e.lba, e.blocks)) {
    res = lba_out_of_range();
    return RwStep::kDone;
  }
  if (e.blocks == 0) return RwStep::kDone;
  uint64_t bytes = e.blocks * kBlockSize;
  // The buffers the kernel mapped must hold the transfer; use exactly that much.
  if (iov_total(data.data(), uint32_t(data.size())) < bytes) {
    res = invalid_field_in_cdb();
    return RwStep::kDone;
  }
  plan.iov.clear();
  for (uint64_t left = bytes; const iovec& v : data) {
    if (left == 0) break;
    plan.iov.push_back({v.iov_base, std::min<uint64_t>(v.iov_len, left)});
    left -= plan.iov.back().iov_len;
  }
  plan.fua = plan.write && cdb.size() > 6 && (cdb[1] & 0x08);
  plan.req = IoRequest{.op = plan.write ? IoOp::kWrite : IoOp::kRead,
                       .offset = e.lba * kBlockSize,
                       .length = bytes,
                       .iov = plan.iov.data(),
                       .iovcnt = uint32_t(plan.iov.size())};
  return RwStep::kSubmit;
}

ScsiResult read_write_result(const RwPlan& plan, const Status& s) {
  if (!s) return io_failure(s, plan.write);
  ScsiResult r;
  if (!plan.write) r.data_in = uint32_t(plan.req.length);
  return r;
}

}  // namespace obd::frontend::tcmu
