#include "tar/wrapper.h"

#include <array>
#include <cstring>
#include <string>
#include <string_view>

#include "tar/pax.h"

namespace obd::tar {
namespace {

// The pax record is tiny in practice; a larger one is treated as corrupt so a
// bogus size cannot make us read or allocate much.
constexpr uint64_t kMaxPaxSize = 64 * 1024;

// A size field; false on junk, overflow or a negative base-256 value.
bool parse_size(const uint8_t* h, uint64_t* out) {
  int64_t v;
  if (!parse_number(h, kSize, &v) || v < 0) return false;
  *out = uint64_t(v);
  return true;
}

Status bad_header(const File& f, uint64_t off, const std::string& what) {
  return Status(Code::kTAR_BAD_HEADER, f.name() + ": tar header at offset " + std::to_string(off) + ": " + what);
}

// The `size=` of pax records ("<len> key=value\n"...); 0 when absent.
Status parse_pax_size(const File& f, const std::string& data, uint64_t* size) {
  *size = 0;
  PaxRecords recs;
  if (std::string err = parse_pax_records(data, &recs); !err.empty()) return bad_header(f, kBlock, err);
  for (const auto& [key, value] : recs) {
    if (key == "size" && !parse_decimal(value, UINT64_MAX, size)) return bad_header(f, kBlock, "pax size= is not decimal");
  }
  return Status::ok();
}

bool is_regular(uint8_t type) { return type == '0' || type == 0; }

}  // namespace

bool is_ustar_header(const uint8_t* h) { return is_posix_ustar(h) && checksum_ok(h); }

Result<WrapInfo> probe(File& blob) {
  WrapInfo info;
  OBD_ASSIGN_OR_RETURN(uint64_t file_size, blob.size());
  info.payload_size = file_size;
  if (file_size < kBlock) return info;
  std::array<uint8_t, kBlock> h;
  OBD_TRY(blob.read_exact(h.data(), h.size(), 0, Code::kTAR_TRUNCATED, "tar header"));
  if (!is_ustar_header(h.data())) return info;
  info.wrapped = true;

  uint64_t hdr_off = 0;
  uint64_t pax_size = 0;
  if (h[kTypeflag] == 'x') {
    info.pax = true;
    uint64_t rec_len;
    if (!parse_size(h.data(), &rec_len)) return bad_header(blob, 0, "size field is not a number");
    if (rec_len > kMaxPaxSize) return bad_header(blob, 0, "pax header size " + std::to_string(rec_len) + " is too large");
    if (kBlock + rec_len > file_size) {
      return Status(Code::kTAR_TRUNCATED, blob.name() + ": pax header at offset 0 needs " + std::to_string(rec_len) +
                                              " bytes, the file ends at " + std::to_string(file_size));
    }
    std::string data(rec_len, '\0');
    OBD_TRY(blob.read_exact(data.data(), rec_len, kBlock, Code::kTAR_TRUNCATED, "pax records"));
    OBD_TRY(parse_pax_size(blob, data, &pax_size));
    hdr_off = kBlock + (rec_len + kBlock - 1) / kBlock * kBlock;
    if (hdr_off + kBlock > file_size) {
      return Status(Code::kTAR_TRUNCATED, blob.name() + ": no tar entry header after the pax header (offset " +
                                              std::to_string(hdr_off) + ", file size " + std::to_string(file_size) + ")");
    }
    OBD_TRY(blob.read_exact(h.data(), h.size(), hdr_off, Code::kTAR_TRUNCATED, "tar entry header"));
    if (!is_ustar_header(h.data())) return bad_header(blob, hdr_off, "not a valid ustar header (magic or checksum)");
  }
  if (!is_regular(h[kTypeflag])) {
    return bad_header(blob, hdr_off, "entry type '" + std::string(1, char(h[kTypeflag])) + "' is not a regular file");
  }
  uint64_t size;
  if (!parse_size(h.data(), &size)) return bad_header(blob, hdr_off, "size field is not a number");
  if (pax_size > 0) size = pax_size;
  info.payload_offset = hdr_off + kBlock;
  info.payload_size = size;
  if (size > file_size - info.payload_offset) {
    return Status(Code::kTAR_TRUNCATED, blob.name() + ": tar payload at offset " + std::to_string(info.payload_offset) +
                                            " has size " + std::to_string(size) + " but the file ends at " +
                                            std::to_string(file_size));
  }
  return info;
}

FilePtr payload_of(FilePtr blob, const WrapInfo& info) {
  if (!info.wrapped) return blob;
  std::string name = blob->name() + "[tar payload]";
  return make_view(std::move(blob), info.payload_offset, info.payload_size, std::move(name));
}

Result<FilePtr> wrap_begin(FilePtr out) {
  if (!out) return Status(Code::kEINVAL, "tar wrap_begin: no output file");
  return make_shifted(std::move(out), kPaxPayloadOffset);
}

Status wrap_finish(FilePtr out, uint64_t payload_len, uint32_t mode) {
  std::array<uint8_t, 3 * kBlock> head{};
  // The pax record "<len> size=<n>\n": <len> counts its own digits.
  std::string body = " size=" + std::to_string(payload_len) + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) len++;
  std::string record = std::to_string(len) + body;

  uint8_t* pax = head.data();
  put_str(pax, kName, "overlaybd.pax");
  put_octal(pax, kSize, record.size());
  pax[kTypeflag] = 'x';
  seal_ustar(pax);
  std::memcpy(head.data() + kBlock, record.data(), record.size());

  uint8_t* entry = head.data() + 2 * kBlock;
  put_str(entry, kName, "overlaybd.commit");
  put_octal(entry, kMode, mode & 0777777);
  put_octal(entry, kUid, 0);
  put_octal(entry, kGid, 0);
  put_octal(entry, kSize, 0);  // the real size is in the pax record
  put_octal(entry, kMtime, 0);
  entry[kTypeflag] = '0';
  put_str(entry, kUname, "root");
  put_str(entry, kGname, "root");
  seal_ustar(entry);
  OBD_TRY(out->pwrite(head.data(), head.size(), 0));

  // Zero the tail of the last payload block and the two end-of-archive blocks.
  uint64_t end = kPaxPayloadOffset + payload_len;
  uint64_t padded = (end + kBlock - 1) / kBlock * kBlock;
  std::array<uint8_t, 3 * kBlock> zeros{};
  OBD_TRY(out->pwrite(zeros.data(), padded - end + 2 * kBlock, end));
  return out->truncate(padded + 2 * kBlock);
}

}  // namespace obd::tar
