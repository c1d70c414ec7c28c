#include "zfile/layout.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "common/crc32c.h"
#include "zfile/codec.h"

namespace obd::zfile {
namespace {

std::string at(const File& f, uint64_t off, const char* what) {
  return f.name() + ": ZFile " + what + " at offset " + std::to_string(off);
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}

Status bad_index(const File& f, const std::string& what) {
  return Status(Code::kZFILE_BAD_INDEX, f.name() + ": ZFile jump table: " + what);
}

// The fields a header-overwrite header must share with the trailer.
Status check_agreement(const File& f, const Record& h, const Record& t) {
  auto differ = [&](const char* field, uint64_t hv, uint64_t tv) {
    return Status(Code::kZFILE_BAD_HEADER, f.name() + ": ZFile header and trailer disagree on " + field + " (" +
                                               std::to_string(hv) + " vs " + std::to_string(tv) + ")");
  };
  // Upstream sets the digest flag in both or neither; a lone one is damage.
  if ((h.flags ^ t.flags) & kFlagDigest) return differ("the digest flag (0x10)", h.flags, t.flags);
  if (h.block_size != t.block_size) return differ("block_size", h.block_size, t.block_size);
  if (h.algo != t.algo) return differ("algo", h.algo, t.algo);
  if (h.verify != t.verify) return differ("verify", h.verify, t.verify);
  if (!(h.flags & kFlagHeaderOverwrite)) return Status::ok();
  if (h.index_offset != t.index_offset) return differ("index_offset", h.index_offset, t.index_offset);
  if (h.index_size != t.index_size) return differ("index_size", h.index_size, t.index_size);
  if (h.original_file_size != t.original_file_size) {
    return differ("original_file_size", h.original_file_size, t.original_file_size);
  }
  if (h.index_crc != t.index_crc) return differ("index_crc", h.index_crc, t.index_crc);
  return Status::ok();
}

}  // namespace

Result<Layout> read_layout(File& f) {
  Layout l;
  RecordBytes header_bytes{}, trailer_bytes{};
  OBD_ASSIGN_OR_RETURN(l.file_size, f.size());

  // Header. A short file that still matches the magic as far as it goes is a
  // truncated ZFile; anything else is not a ZFile at all.
  OBD_ASSIGN_OR_RETURN(size_t got, f.pread(header_bytes.data(), kRecordSize, 0));
  if (got < kRecordSize) {
    RecordBytes ref = encode(Record{});
    size_t n = std::min<size_t>(got, 24);
    if (got == 0 || std::memcmp(header_bytes.data(), ref.data(), n) != 0) {
      return Status(Code::kZFILE_BAD_MAGIC, at(f, 0, "header") + ": no ZFile magic");
    }
    return Status(Code::kZFILE_TRUNCATED, at(f, 0, "header") + ": the file ends after " + std::to_string(got) + " bytes");
  }
  OBD_ASSIGN_OR_RETURN(l.header, decode(header_bytes, at(f, 0, "header")));
  // Digest first: a damaged flags field is then reported as damage.
  OBD_TRY(validate_digest(header_bytes, l.header, at(f, 0, "header")));
  if (!l.header.is_header()) {
    return Status(Code::kZFILE_BAD_HEADER, at(f, 0, "header") + ": flags field " + hex(l.header.flags) +
                                               " lacks the header bit");
  }
  OBD_TRY(validate_options(l.header, at(f, 0, "header")));

  // Trailer: always required, even when the header carries the index info, so
  // a cut or damaged end of file is reported rather than silently ignored.
  if (l.file_size < 2 * kRecordSize) {
    return Status(Code::kZFILE_TRUNCATED,
                  f.name() + ": ZFile of " + std::to_string(l.file_size) + " bytes has no room for a trailer");
  }
  uint64_t trailer_off = l.file_size - kRecordSize;
  OBD_TRY(f.read_exact(trailer_bytes.data(), kRecordSize, trailer_off, Code::kZFILE_TRUNCATED, "ZFile trailer"));
  if (!has_magic(trailer_bytes.data(), kRecordSize)) {
    return Status(Code::kZFILE_TRUNCATED,
                  at(f, trailer_off, "trailer") + ": no ZFile magic (the file is truncated or was never finished)");
  }
  OBD_ASSIGN_OR_RETURN(l.trailer, decode(trailer_bytes, at(f, trailer_off, "trailer")));
  OBD_TRY(validate_digest(trailer_bytes, l.trailer, at(f, trailer_off, "trailer")));
  if (l.trailer.is_header() || !l.trailer.has(kFlagDataFile | kFlagSealed)) {
    return Status(Code::kZFILE_BAD_HEADER, at(f, trailer_off, "trailer") + ": flags field " + hex(l.trailer.flags) +
                                               " is not a sealed data-file trailer");
  }
  OBD_TRY(validate_options(l.trailer, at(f, trailer_off, "trailer")));

  l.header_overwritten = l.header.flags & kFlagHeaderOverwrite;
  const Record& e = l.header_overwritten ? l.header : l.trailer;
  std::string where = l.header_overwritten ? at(f, 0, "header") : at(f, trailer_off, "trailer");
  l.algo = Algorithm(e.algo);
  l.block_size = e.block_size;
  l.verify = e.verify;
  l.digests = e.flags & kFlagDigest;
  l.original_size = e.original_file_size;
  l.nblocks = e.index_size;
  l.index_offset = e.index_offset;
  l.index_crc = e.index_crc;
  l.max_stored = uint32_t(compress_bound(l.algo, l.block_size) + (l.verify ? kCrcSize : 0));

  if (l.nblocks > kMaxBlocks) {
    return Status(Code::kZFILE_BAD_INDEX, where + ": index_size " + std::to_string(l.nblocks) + " exceeds 1e9");
  }
  if (l.index_offset < l.data_offset || l.index_offset > trailer_off ||
      l.nblocks * 4 > trailer_off - l.index_offset) {
    return Status(Code::kZFILE_BAD_INDEX, where + ": jump table of " + std::to_string(l.nblocks) +
                                              " entries at index_offset " + std::to_string(l.index_offset) +
                                              " does not fit between offset 512 and the trailer at " +
                                              std::to_string(trailer_off));
  }
  // Written without `size + bs - 1`, which wraps for a hostile size near 2^64.
  uint64_t need = l.original_size / l.block_size + (l.original_size % l.block_size != 0);
  if (need != l.nblocks) {
    return Status(Code::kZFILE_BAD_HEADER, where + ": original_file_size " + std::to_string(l.original_size) +
                                               " needs " + std::to_string(need) + " blocks of " +
                                               std::to_string(l.block_size) + " but index_size is " +
                                               std::to_string(l.nblocks));
  }
  OBD_TRY(check_agreement(f, l.header, l.trailer));
  return l;
}

Result<JumpTable> read_jump_table(File& f, const Layout& l) {
  JumpTable jt(l.data_offset, l.max_stored, l.nblocks);
  const uint32_t min_len = l.verify ? kCrcSize + 1 : 1;
  constexpr uint64_t kChunk = 64 * 1024;  // entries per read
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(std::min(l.nblocks, kChunk) * 4 + 1);
  uint32_t crc = 0;
  Status first_error;  // reported only if the CRC does not explain it
  for (uint64_t i = 0; i < l.nblocks;) {
    uint64_t n = std::min(kChunk, l.nblocks - i);
    OBD_TRY(f.read_exact(buf.get(), n * 4, l.index_offset + i * 4, Code::kZFILE_TRUNCATED, "ZFile jump table"));
    crc = crc32c_update(crc, buf.get(), n * 4);
    for (uint64_t k = 0; k < n && first_error.is_ok(); k++) {
      const uint8_t* p = buf.get() + k * 4;
      uint32_t len = p[0] | p[1] << 8 | p[2] << 16 | uint32_t(p[3]) << 24;
      uint64_t block = i + k;
      if (len < min_len || len > l.max_stored) {
        first_error = bad_index(f, "block " + std::to_string(block) + " (entry at offset " +
                                       std::to_string(l.index_offset + block * 4) + ") has stored length " +
                                       std::to_string(len) + ", expected " + std::to_string(min_len) + ".." +
                                       std::to_string(l.max_stored));
      } else if (len > l.index_offset - jt.end()) {
        first_error = bad_index(f, "block " + std::to_string(block) + " at offset " + std::to_string(jt.end()) +
                                       " with stored length " + std::to_string(len) +
                                       " runs past the jump table at " + std::to_string(l.index_offset));
      } else {
        jt.push(len);
      }
    }
    i += n;
  }
  if (l.digests && crc != l.index_crc) {
    return Status(Code::kZFILE_INDEX_CRC_MISMATCH, f.name() + ": ZFile jump table at offset " +
                                                       std::to_string(l.index_offset) + ": index_crc field is " +
                                                       std::to_string(l.index_crc) + ", the table's CRC-32C is " +
                                                       std::to_string(crc));
  }
  if (!first_error.is_ok()) return first_error;
  return jt;
}

}  // namespace obd::zfile
