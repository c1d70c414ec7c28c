#include "tar/tar_wrapper.h"

#include <array>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace obd {
namespace {

// ustar header field positions (POSIX.1-1988).
constexpr size_t kName = 0, kMode = 100, kUid = 108, kGid = 116, kSize = 124, kMtime = 136, kChksum = 148,
                 kType = 156, kMagic = 257, kVersion = 263, kUname = 265, kGname = 297;
// The pax record is tiny in practice; a larger one is treated as corrupt so a
// bogus size cannot make us read or allocate much.
constexpr uint64_t kMaxPaxSize = 64 * 1024;

// Parses a numeric field: octal (leading spaces/NULs, ends at space or NUL) or
// GNU base-256 (high bit of the first byte). False on junk or overflow.
bool parse_numeric(const uint8_t* p, size_t n, uint64_t* out) {
  if (p[0] & 0x80) {
    if (p[0] & 0x40) return false;  // negative
    uint64_t v = p[0] & 0x3F;
    for (size_t i = 1; i < n; i++) {
      if (v >> 56) return false;
      v = (v << 8) | p[i];
    }
    *out = v;
    return true;
  }
  size_t i = 0;
  while (i < n && (p[i] == ' ' || p[i] == 0)) i++;
  uint64_t v = 0;
  bool digits = false;
  for (; i < n && p[i] >= '0' && p[i] <= '7'; i++) {
    if (v >> 61) return false;
    v = v * 8 + (p[i] - '0');
    digits = true;
  }
  for (; i < n; i++) {
    if (p[i] != ' ' && p[i] != 0) return false;
  }
  // An all-blank field reads as 0 (GNU tar does the same).
  *out = digits ? v : 0;
  return true;
}

// Sum of the header bytes with the checksum field taken as spaces; historic
// tars summed signed chars, so both forms are accepted.
void header_sums(const uint8_t* h, uint64_t* usum, int64_t* ssum) {
  uint64_t u = 0;
  int64_t s = 0;
  for (size_t i = 0; i < kTarBlock; i++) {
    uint8_t b = (i >= kChksum && i < kChksum + 8) ? ' ' : h[i];
    u += b;
    s += static_cast<int8_t>(b);
  }
  *usum = u;
  *ssum = s;
}

Status bad_header(const File& f, uint64_t off, const std::string& what) {
  return Status(Code::kTAR_BAD_HEADER, f.name() + ": tar header at offset " + std::to_string(off) + ": " + what);
}

// Finds `size=` in pax records ("<len> key=value\n"...). 0 when absent.
Status parse_pax_size(const File& f, const std::string& data, uint64_t* size) {
  *size = 0;
  size_t pos = 0;
  while (pos < data.size()) {
    if (data[pos] == 0) break;  // zero padding after the last record
    size_t sp = data.find(' ', pos);
    if (sp == std::string::npos || sp == pos || sp - pos > 10) {
      return bad_header(f, kTarBlock + pos, "pax record length is malformed");
    }
    uint64_t len = 0;
    for (size_t i = pos; i < sp; i++) {
      if (data[i] < '0' || data[i] > '9') return bad_header(f, kTarBlock + pos, "pax record length is not decimal");
      len = len * 10 + (data[i] - '0');
    }
    if (len <= sp - pos + 1 || len > data.size() - pos || data[pos + len - 1] != '\n') {
      return bad_header(f, kTarBlock + pos, "pax record length " + std::to_string(len) + " is out of range");
    }
    std::string_view rec(data.data() + sp + 1, pos + len - 1 - (sp + 1));
    size_t eq = rec.find('=');
    if (eq == std::string_view::npos) return bad_header(f, kTarBlock + pos, "pax record has no '='");
    if (rec.substr(0, eq) == "size") {
      std::string_view val = rec.substr(eq + 1);
      if (val.empty() || val.size() > 19) return bad_header(f, kTarBlock + pos, "pax size= is malformed");
      uint64_t v = 0;
      for (char c : val) {
        if (c < '0' || c > '9') return bad_header(f, kTarBlock + pos, "pax size= is not decimal");
        v = v * 10 + (c - '0');
      }
      *size = v;
    }
    pos += len;
  }
  return Status::ok();
}

bool is_regular(uint8_t type) { return type == '0' || type == 0; }

// Maps payload offsets onto the archive: the file handed to `-t` writers.
class PayloadFile final : public File {
 public:
  PayloadFile(FilePtr inner, uint64_t base) : inner_(std::move(inner)), base_(base), name_(inner_->name()) {}
  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override {
    OBD_ASSIGN_OR_RETURN(uint64_t sz, inner_->size());
    return sz > base_ ? sz - base_ : 0;
  }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override { return inner_->pread(buf, len, base_ + off); }
  Status pread_batch(std::span<ReadReq> reqs) override {
    for (auto& r : reqs) r.off += base_;
    Status s = inner_->pread_batch(reqs);
    for (auto& r : reqs) r.off -= base_;
    return s;
  }
  Status pwrite(const void* buf, size_t len, uint64_t off) override { return inner_->pwrite(buf, len, base_ + off); }
  Status punch_hole(uint64_t off, uint64_t len) override { return inner_->punch_hole(base_ + off, len); }
  Status truncate(uint64_t size) override { return inner_->truncate(base_ + size); }
  Status sync() override { return inner_->sync(); }

 private:
  FilePtr inner_;
  uint64_t base_;
  std::string name_;
};

// Writers format numbers the way the upstream tools do (see vectors/zfile/A.lz4bs4.tar):
// "%6o \0" for 8-byte fields, "%11o " for 12-byte ones.
void put_octal8(uint8_t* p, uint64_t v) {
  char tmp[16];
  std::snprintf(tmp, sizeof tmp, "%6llo ", static_cast<unsigned long long>(v));
  std::memcpy(p, tmp, 7);
  p[7] = 0;
}
void put_octal12(uint8_t* p, uint64_t v) {
  char tmp[24];
  std::snprintf(tmp, sizeof tmp, "%11llo ", static_cast<unsigned long long>(v));
  std::memcpy(p, tmp, 12);
}
void put_string(uint8_t* p, std::string_view s) { std::memcpy(p, s.data(), s.size()); }
void finish_header(uint8_t* h) {
  std::memcpy(h + kMagic, "ustar\0", 6);
  std::memcpy(h + kVersion, "00", 2);
  uint64_t usum;
  int64_t ssum;
  header_sums(h, &usum, &ssum);
  put_octal8(h + kChksum, usum);
}

}  // namespace

bool is_ustar_header(const uint8_t* h) {
  if (std::memcmp(h + kMagic, "ustar\0", 6) != 0 || std::memcmp(h + kVersion, "00", 2) != 0) return false;
  uint64_t stored;
  if (!parse_numeric(h + kChksum, 8, &stored)) return false;
  uint64_t usum;
  int64_t ssum;
  header_sums(h, &usum, &ssum);
  return stored == usum || static_cast<int64_t>(stored) == ssum;
}

Result<TarWrapInfo> probe_tar(File& blob) {
  TarWrapInfo info;
  OBD_ASSIGN_OR_RETURN(uint64_t file_size, blob.size());
  info.payload_size = file_size;
  if (file_size < kTarBlock) return info;
  std::array<uint8_t, kTarBlock> h;
  OBD_TRY(blob.read_exact(h.data(), h.size(), 0, Code::kTAR_TRUNCATED, "tar header"));
  if (!is_ustar_header(h.data())) return info;
  info.wrapped = true;

  uint64_t hdr_off = 0;
  uint64_t pax_size = 0;
  if (h[kType] == 'x') {
    info.pax = true;
    uint64_t rec_len;
    if (!parse_numeric(h.data() + kSize, 12, &rec_len)) return bad_header(blob, 0, "size field is not a number");
    if (rec_len > kMaxPaxSize) return bad_header(blob, 0, "pax header size " + std::to_string(rec_len) + " is too large");
    if (kTarBlock + rec_len > file_size) {
      return Status(Code::kTAR_TRUNCATED, blob.name() + ": pax header at offset 0 needs " + std::to_string(rec_len) +
                                              " bytes, the file ends at " + std::to_string(file_size));
    }
    std::string data(rec_len, '\0');
    OBD_TRY(blob.read_exact(data.data(), rec_len, kTarBlock, Code::kTAR_TRUNCATED, "pax records"));
    OBD_TRY(parse_pax_size(blob, data, &pax_size));
    hdr_off = kTarBlock + (rec_len + kTarBlock - 1) / kTarBlock * kTarBlock;
    if (hdr_off + kTarBlock > file_size) {
      return Status(Code::kTAR_TRUNCATED, blob.name() + ": no tar entry header after the pax header (offset " +
                                              std::to_string(hdr_off) + ", file size " + std::to_string(file_size) + ")");
    }
    OBD_TRY(blob.read_exact(h.data(), h.size(), hdr_off, Code::kTAR_TRUNCATED, "tar entry header"));
    if (!is_ustar_header(h.data())) return bad_header(blob, hdr_off, "not a valid ustar header (magic or checksum)");
  }
  if (!is_regular(h[kType])) {
    return bad_header(blob, hdr_off, "entry type '" + std::string(1, char(h[kType])) + "' is not a regular file");
  }
  uint64_t size;
  if (!parse_numeric(h.data() + kSize, 12, &size)) return bad_header(blob, hdr_off, "size field is not a number");
  if (pax_size > 0) size = pax_size;
  info.payload_offset = hdr_off + kTarBlock;
  info.payload_size = size;
  if (size > file_size - info.payload_offset) {
    return Status(Code::kTAR_TRUNCATED, blob.name() + ": tar payload at offset " + std::to_string(info.payload_offset) +
                                            " has size " + std::to_string(size) + " but the file ends at " +
                                            std::to_string(file_size));
  }
  return info;
}

Result<FilePtr> unwrap_tar(FilePtr blob) {
  OBD_ASSIGN_OR_RETURN(TarWrapInfo info, probe_tar(*blob));
  if (!info.wrapped) return blob;
  std::string name = blob->name() + "[tar payload]";
  return make_view(std::move(blob), info.payload_offset, info.payload_size, std::move(name));
}

Result<FilePtr> tar_wrap_begin(FilePtr out) {
  if (!out) return Status(Code::kEINVAL, "tar_wrap_begin: no output file");
  return FilePtr(std::make_shared<PayloadFile>(std::move(out), kTarPaxPayloadOffset));
}

Status tar_wrap_finish(FilePtr out, uint64_t payload_len, uint32_t mode) {
  std::array<uint8_t, 3 * kTarBlock> head{};
  // The pax record "<len> size=<n>\n": <len> counts its own digits.
  std::string body = " size=" + std::to_string(payload_len) + "\n";
  size_t len = body.size() + 1;
  while (std::to_string(len).size() + body.size() != len) len++;
  std::string record = std::to_string(len) + body;

  uint8_t* pax = head.data();
  put_string(pax + kName, "overlaybd.pax");
  put_octal12(pax + kSize, record.size());
  pax[kType] = 'x';
  finish_header(pax);
  put_string(head.data() + kTarBlock, record);

  uint8_t* entry = head.data() + 2 * kTarBlock;
  put_string(entry + kName, "overlaybd.commit");
  put_octal8(entry + kMode, mode & 07777777);
  put_octal8(entry + kUid, 0);
  put_octal8(entry + kGid, 0);
  put_octal12(entry + kSize, 0);  // the real size is in the pax record
  put_octal12(entry + kMtime, 0);
  entry[kType] = '0';
  put_string(entry + kUname, "root");
  put_string(entry + kGname, "root");
  finish_header(entry);
  OBD_TRY(out->pwrite(head.data(), head.size(), 0));

  // Zero the tail of the last payload block and the two end-of-archive blocks.
  uint64_t end = kTarPaxPayloadOffset + payload_len;
  uint64_t padded = (end + kTarBlock - 1) / kTarBlock * kTarBlock;
  std::array<uint8_t, 3 * kTarBlock> zeros{};
  OBD_TRY(out->pwrite(zeros.data(), padded - end + 2 * kTarBlock, end));
  return out->truncate(padded + 2 * kTarBlock);
}

}  // namespace obd
