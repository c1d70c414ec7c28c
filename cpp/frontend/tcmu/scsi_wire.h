// Pieces shared by the command files: big-endian fields, the common sense
// codes, and data-in copied to the command's buffers.
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <span>

#include "frontend/tcmu/scsi.h"

namespace obd::frontend::tcmu {

inline uint16_t get_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
inline uint32_t get_be32(const uint8_t* p) { return uint32_t(get_be16(p)) << 16 | get_be16(p + 2); }
inline uint64_t get_be64(const uint8_t* p) { return uint64_t(get_be32(p)) << 32 | get_be32(p + 4); }
inline void put_be16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
inline void put_be32(uint8_t* p, uint32_t v) {
  put_be16(p, uint16_t(v >> 16));
  put_be16(p + 2, uint16_t(v));
}
inline void put_be64(uint8_t* p, uint64_t v) {
  put_be32(p, uint32_t(v >> 32));
  put_be32(p + 4, uint32_t(v));
}

// ASC/ASCQ pairs (SPC-4 annex D).
inline ScsiResult invalid_opcode() { return check_condition(SenseKey::kIllegalRequest, 0x20, 0x00); }
inline ScsiResult lba_out_of_range() { return check_condition(SenseKey::kIllegalRequest, 0x21, 0x00); }
inline ScsiResult invalid_field_in_cdb() { return check_condition(SenseKey::kIllegalRequest, 0x24, 0x00); }
inline ScsiResult invalid_field_in_param() { return check_condition(SenseKey::kIllegalRequest, 0x26, 0x00); }
inline ScsiResult param_list_length_error() { return check_condition(SenseKey::kIllegalRequest, 0x1a, 0x00); }
inline ScsiResult write_protected() { return check_condition(SenseKey::kDataProtect, 0x27, 0x00); }

// Copies up to `alloc` bytes of `src` (no more than the buffers hold) as
// the command's data-in, and reports how many went out.
ScsiResult data_in(std::span<const iovec> data, const uint8_t* src, size_t len, size_t alloc);

// INQUIRY, READ CAPACITY (10/16), MODE SENSE (6/10), REQUEST SENSE.
ScsiResult inquiry(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk);
ScsiResult read_capacity10(std::span<const iovec> data, const DiskInfo& disk);
ScsiResult read_capacity16(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk);
ScsiResult mode_sense(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk);
ScsiResult request_sense(std::span<const uint8_t> cdb, std::span<const iovec> data);

}  // namespace obd::frontend::tcmu
