// SCSI block commands as a TCMU handler must emulate them: the kernel's
// target core passes everything but REPORT LUNS and reservations through to
// user space, so INQUIRY, READ CAPACITY and MODE SENSE are ours as well as
// the reads and writes. One call takes a CDB, the command's data buffers and
// the disk, and returns the SCSI status with fixed-format sense data.
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "device/block_device.h"

namespace obd::frontend::tcmu {

constexpr uint32_t kBlockSize = 512;
constexpr uint8_t kStatusGood = 0x00;
constexpr uint8_t kStatusCheckCondition = 0x02;
constexpr size_t kFixedSenseLen = 18;

// Sense keys used here (SPC-4 table 51).
enum class SenseKey : uint8_t {
  kNoSense = 0x0,
  kMediumError = 0x3,
  kHardwareError = 0x4,
  kIllegalRequest = 0x5,
  kDataProtect = 0x7,
};

struct ScsiResult {
  uint8_t status = kStatusGood;
  // Fixed-format sense data (response code 0x70) when status is CHECK CONDITION.
  uint8_t sense[kFixedSenseLen] = {};
  // Bytes of data-in the command produced (TCMU's read_len).
  uint32_t data_in = 0;
  // The I/O failure behind a CHECK CONDITION, for the handler's log.
  Status cause;

  SenseKey key() const { return SenseKey(sense[2] & 0x0f); }
  uint8_t asc() const { return sense[12]; }
  uint8_t ascq() const { return sense[13]; }
};

ScsiResult check_condition(SenseKey key, uint8_t asc, uint8_t ascq);

// What the disk reports about itself.
struct DiskInfo {
  uint64_t size = 0;  // bytes, a multiple of kBlockSize
  bool read_only = false;
  // Discarded blocks read back as zeros (VPD 0xb2 LBPRZ): true for an
  // append upper, false for a sparse one over lowers.
  bool unmap_zeroes = true;
  // Reported in the caching mode page: the kernel sends SYNCHRONIZE CACHE
  // only to a disk with a write cache.
  bool write_cache = true;
  uint32_t max_transfer_blocks = 2048;       // VPD 0xb0: one command's limit (1 MiB)
  uint32_t max_unmap_blocks = 1u << 22;      // VPD 0xb0: LBAs per UNMAP (2 GiB)
  uint32_t max_unmap_descriptors = 256;      // VPD 0xb0: descriptors per UNMAP
  uint64_t max_write_same_blocks = 1u << 22; // VPD 0xb0
  std::string vendor = "LIO-ORG";      // INQUIRY, 8 characters at most
  std::string product = "TCMU device"; // 16 at most
  std::string revision = "0002";       // 4 at most
  std::string serial;                  // VPD 0x80, and the base of VPD 0x83's names
};

// Runs block requests for the emulation, one at a time.
class BlockIo {
 public:
  virtual ~BlockIo() = default;
  // Runs `req` to its end and returns its status (req.done/ctx are the
  // implementation's to use).
  virtual Status run(IoRequest& req) = 0;
};

// Length of the CDB that starts with `opcode` (from its group code; a
// variable-length CDB needs its byte 7), or 0 when the group is reserved.
size_t cdb_length(std::span<const uint8_t> cdb);

// Executes one command. `data` holds the data-out bytes or receives the
// data-in bytes. Never fails otherwise than through the result.
ScsiResult execute_cdb(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk,
                       BlockIo& io);

// READ/WRITE (6/10/12/16) as one block request, for a handler that keeps
// several commands in flight: plan it, run `req` (and, when `fua`, a flush
// after it) however it likes, then turn the outcome into the result.
struct RwPlan {
  IoRequest req;
  std::vector<iovec> iov;  // the command's buffers, trimmed to the transfer
  bool write = false;
  bool fua = false;  // a flush must follow the write
};

enum class RwStep {
  kNotRw,   // not a READ/WRITE: use execute_cdb
  kDone,    // `res` is the final result (bad CDB, out of range, zero length)
  kSubmit,  // run plan.req; its iov points into plan.iov, so keep the plan in place
};

RwStep plan_read_write(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk, RwPlan& plan,
                       ScsiResult& res);

// The result of a planned READ/WRITE whose request (and flush) ended with `s`.
ScsiResult read_write_result(const RwPlan& plan, const Status& s);

}  // namespace obd::frontend::tcmu
