// CDB builders the SCSI and TCMU ring tests share: the 10- and 16-byte
// forms of READ/WRITE/WRITE SAME/SYNCHRONIZE CACHE (op, flags byte, LBA, count).
#pragma once
#include <cstdint>
#include <vector>

#include "frontend/tcmu/scsi_wire.h"

namespace obd::test {

inline std::vector<uint8_t> cdb10(uint8_t op, uint32_t lba, uint16_t n, uint8_t flags = 0) {
  std::vector<uint8_t> c(10, 0);
  c[0] = op;
  c[1] = flags;
  frontend::tcmu::put_be32(&c[2], lba);
  frontend::tcmu::put_be16(&c[7], n);
  return c;
}

inline std::vector<uint8_t> cdb16(uint8_t op, uint64_t lba, uint32_t n, uint8_t flags = 0) {
  std::vector<uint8_t> c(16, 0);
  c[0] = op;
  c[1] = flags;
  frontend::tcmu::put_be64(&c[2], lba);
  frontend::tcmu::put_be32(&c[10], n);
  return c;
}

}  // namespace obd::test
