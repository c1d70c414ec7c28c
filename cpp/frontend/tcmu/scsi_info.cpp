// The commands that describe the disk: INQUIRY with its VPD pages, READ
// CAPACITY, MODE SENSE and REQUEST SENSE. Layouts are SPC-4 / SBC-3's.
#include <algorithm>
#include <cstring>
#include <vector>

#include "device/iov.h"
#include "frontend/tcmu/scsi_wire.h"

namespace obd::frontend::tcmu {
namespace {

constexpr uint8_t kVpdPages[] = {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2};

// Copies `s` into a space-padded field of `n` bytes.
void put_ascii(uint8_t* p, const std::string& s, size_t n) {
  std::memset(p, ' ', n);
  std::memcpy(p, s.data(), std::min(n, s.size()));
}

uint64_t fnv1a(const std::string& s, uint64_t seed) {
  uint64_t h = 1469598103934665603ull ^ seed;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<uint8_t> standard_inquiry(const DiskInfo& disk) {
  std::vector<uint8_t> b(36, 0);
  b[0] = 0x00;  // peripheral qualifier 0, direct access block device
  b[2] = 0x06;  // SPC-4
  b[3] = 0x02;  // response data format 2
  b[4] = uint8_t(b.size() - 5);
  b[7] = 0x02;  // CMDQUE
  put_ascii(&b[8], disk.vendor, 8);
  put_ascii(&b[16], disk.product, 16);
  put_ascii(&b[32], disk.revision, 4);
  return b;
}

// Device identification: an NAA 6 name (LIO's OUI, the rest derived from
// the serial) and a T10 vendor id designator "<vendor><serial>".
std::vector<uint8_t> device_id_page(const DiskInfo& disk) {
  std::vector<uint8_t> b(4, 0);
  b[1] = 0x83;
  uint8_t naa[20] = {0x01, 0x03, 0x00, 16};  // binary, LU, NAA, 16 bytes
  uint64_t hi = fnv1a(disk.serial, 0), lo = fnv1a(disk.serial, 1);
  // NAA 6 | OUI 0x001405 | 36 + 64 bits vendor specific.
  put_be64(&naa[4], 0x6001405000000000ull | (hi & 0xfffffffffull));
  put_be64(&naa[12], lo);
  b.insert(b.end(), naa, naa + sizeof naa);
  std::string t10(8, ' ');
  std::memcpy(t10.data(), disk.vendor.data(), std::min<size_t>(8, disk.vendor.size()));
  t10 += disk.serial.substr(0, 200);
  b.insert(b.end(), {0x02, 0x01, 0x00, uint8_t(t10.size())});  // ASCII, LU, T10 vendor id
  b.insert(b.end(), t10.begin(), t10.end());
  put_be16(&b[2], uint16_t(b.size() - 4));
  return b;
}

std::vector<uint8_t> block_limits_page(const DiskInfo& disk) {
  std::vector<uint8_t> b(64, 0);
  b[1] = 0xb0;
  put_be16(&b[2], 0x3c);
  put_be16(&b[6], 8);  // optimal transfer granularity: 4 KiB
  put_be32(&b[8], disk.max_transfer_blocks);
  put_be32(&b[12], disk.max_transfer_blocks);
  if (!disk.read_only) {
    put_be32(&b[20], disk.max_unmap_blocks);
    put_be32(&b[24], disk.max_unmap_descriptors);
    put_be32(&b[28], 8);  // optimal unmap granularity: 4 KiB
    put_be32(&b[32], 0x80000000u);  // UGAVALID, alignment 0
    put_be64(&b[36], disk.max_write_same_blocks);
  }
  return b;
}

std::vector<uint8_t> block_characteristics_page() {
  std::vector<uint8_t> b(64, 0);
  b[1] = 0xb1;
  put_be16(&b[2], 0x3c);
  put_be16(&b[4], 1);  // non-rotating medium
  return b;
}

std::vector<uint8_t> provisioning_page(const DiskInfo& disk) {
  std::vector<uint8_t> b(8, 0);
  b[1] = 0xb2;
  put_be16(&b[2], 4);
  if (!disk.read_only) {
    b[5] = 0x80 | 0x40 | 0x20;  // LBPU, LBPWS, LBPWS10
    if (disk.unmap_zeroes) b[5] |= 0x01 << 2;  // LBPRZ
    b[6] = 0x02;  // thin provisioned
  }
  return b;
}

}  // namespace

ScsiResult data_in(std::span<const iovec> data, const uint8_t* src, size_t len, size_t alloc) {
  size_t n = std::min<uint64_t>({len, alloc, iov_total(data.data(), uint32_t(data.size()))});
  IovCursor(data.data(), uint32_t(data.size())).copy_in(src, n);
  ScsiResult r;
  r.data_in = uint32_t(n);
  return r;
}

ScsiResult inquiry(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk) {
  bool evpd = cdb[1] & 0x01;
  uint8_t page = cdb[2];
  size_t alloc = get_be16(&cdb[3]);
  if (cdb[1] & 0xfe) return invalid_field_in_cdb();  // CMDDT and reserved bits
  std::vector<uint8_t> b;
  if (!evpd) {
    if (page != 0) return invalid_field_in_cdb();
    b = standard_inquiry(disk);
  } else {
    switch (page) {
      case 0x00:
        b = {0x00, 0x00, 0x00, uint8_t(sizeof kVpdPages)};
        b.insert(b.end(), std::begin(kVpdPages), std::end(kVpdPages));
        break;
      case 0x80: {
        std::string s = disk.serial.substr(0, 251);
        b = {0x00, 0x80, 0x00, uint8_t(s.size())};
        b.insert(b.end(), s.begin(), s.end());
        break;
      }
      case 0x83:
        b = device_id_page(disk);
        break;
      case 0xb0:
        b = block_limits_page(disk);
        break;
      case 0xb1:
        b = block_characteristics_page();
        break;
      case 0xb2:
        b = provisioning_page(disk);
        break;
      default:
        return invalid_field_in_cdb();
    }
  }
  return data_in(data, b.data(), b.size(), alloc);
}

ScsiResult read_capacity10(std::span<const iovec> data, const DiskInfo& disk) {
  uint8_t b[8];
  uint64_t last = disk.size / kBlockSize - 1;
  put_be32(b, last > 0xffffffffull ? 0xffffffffu : uint32_t(last));
  put_be32(b + 4, kBlockSize);
  return data_in(data, b, sizeof b, sizeof b);
}

ScsiResult read_capacity16(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk) {
  uint8_t b[32] = {};
  put_be64(b, disk.size / kBlockSize - 1);
  put_be32(b + 8, kBlockSize);
  b[13] = 3;  // 8 logical blocks per physical block: 4 KiB
  if (!disk.read_only) b[14] = 0x80 | (disk.unmap_zeroes ? 0x40 : 0);  // LBPME, LBPRZ
  return data_in(data, b, sizeof b, get_be32(&cdb[10]));
}

ScsiResult mode_sense(std::span<const uint8_t> cdb, std::span<const iovec> data, const DiskInfo& disk) {
  bool ten = cdb[0] == 0x5a;
  bool dbd = cdb[1] & 0x08;
  uint8_t pc = cdb[2] >> 6, page = cdb[2] & 0x3f, subpage = cdb[3];
  size_t alloc = ten ? get_be16(&cdb[7]) : cdb[4];
  if (pc == 3) return check_condition(SenseKey::kIllegalRequest, 0x39, 0x00);  // saving not supported
  if (subpage != 0 && subpage != 0xff) return invalid_field_in_cdb();
  bool changeable = pc == 1;  // nothing is: those masks are all zeros
  std::vector<uint8_t> pages;
  if (page == 0x08 || page == 0x3f) {
    uint8_t p[20] = {0x08, 0x12};
    if (!changeable && disk.write_cache) p[2] = 0x04;  // WCE
    pages.insert(pages.end(), p, p + sizeof p);
  }
  if (page == 0x0a || page == 0x3f) {
    uint8_t p[12] = {0x0a, 0x0a};
    if (!changeable) {
      p[3] = 0x10;                 // unrestricted reordering allowed
      put_be16(&p[8], 0xffff);     // busy timeout: unlimited
    }
    pages.insert(pages.end(), p, p + sizeof p);
  }
  if (pages.empty()) return invalid_field_in_cdb();
  size_t hdr = ten ? 8 : 4;
  std::vector<uint8_t> b(hdr, 0);
  uint8_t dev_specific = disk.read_only ? 0x80 : 0x00;  // WP
  if (!dbd) {
    uint8_t d[8] = {};
    uint64_t blocks = disk.size / kBlockSize;
    uint32_t shown = blocks > 0xffffff ? 0xffffff : uint32_t(blocks);
    d[1] = uint8_t(shown >> 16);
    d[2] = uint8_t(shown >> 8);
    d[3] = uint8_t(shown);
    d[5] = uint8_t(kBlockSize >> 16);
    d[6] = uint8_t(kBlockSize >> 8);
    d[7] = uint8_t(kBlockSize);
    b.insert(b.end(), d, d + sizeof d);
  }
  b.insert(b.end(), pages.begin(), pages.end());
  if (ten) {
    put_be16(&b[0], uint16_t(b.size() - 2));
    b[3] = dev_specific;
    put_be16(&b[6], dbd ? 0 : 8);
  } else {
    b[0] = uint8_t(b.size() - 1);
    b[2] = dev_specific;
    b[3] = dbd ? 0 : 8;
  }
  return data_in(data, b.data(), b.size(), alloc);
}

ScsiResult request_sense(std::span<const uint8_t> cdb, std::span<const iovec> data) {
  if (cdb[1] & 0x01) return invalid_field_in_cdb();  // descriptor format: we keep fixed only
  // Sense goes back with each failed command (autosense), so none is pending.
  ScsiResult none = check_condition(SenseKey::kNoSense, 0, 0);
  return data_in(data, none.sense, kFixedSenseLen, cdb[4]);
}

}  // namespace obd::frontend::tcmu
