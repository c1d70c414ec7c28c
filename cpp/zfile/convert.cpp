#include "zfile/convert.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "zfile/layout.h"
#include "zfile/reader.h"

namespace obd {
namespace {

constexpr size_t kCopyChunk = 4 << 20;

// open_zfile wants shared ownership; these helpers only borrow the file.
FilePtr borrow(File& f) { return FilePtr(&f, [](File*) {}); }

bool all_zero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

}  // namespace

Result<uint64_t> zfile_compress(File& src, FilePtr dst, const ZFileOptions& opts) {
  OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(std::move(dst), opts));
  OBD_TRY(copy_to_sink(src, *w));
  OBD_TRY(w->finish());
  return w->stored_size();
}

Status zfile_decompress(File& zf, FilePtr dst) {
  OBD_ASSIGN_OR_RETURN(FilePtr z, open_zfile(borrow(zf)));
  OBD_ASSIGN_OR_RETURN(uint64_t size, z->size());
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(kCopyChunk);
  constexpr size_t kPage = 4096;
  for (uint64_t off = 0; off < size;) {
    size_t want = size_t(std::min<uint64_t>(kCopyChunk, size - off));
    OBD_TRY(z->read_exact(buf.get(), want, off, Code::kZFILE_TRUNCATED, "ZFile content"));
    // Write runs of non-zero pages; zero pages stay holes.
    for (size_t p = 0; p < want;) {
      size_t n = std::min(kPage, want - p);
      if (all_zero(buf.get() + p, n)) {
        p += n;
        continue;
      }
      size_t q = p + n;
      while (q < want && !all_zero(buf.get() + q, std::min(kPage, want - q))) q += std::min(kPage, want - q);
      OBD_TRY(dst->pwrite(buf.get() + p, q - p, off + p));
      p = q;
    }
    off += want;
  }
  return dst->truncate(size);
}

Status zfile_verify(File& zf) {
  OBD_ASSIGN_OR_RETURN(FilePtr z, open_zfile(borrow(zf)));
  OBD_ASSIGN_OR_RETURN(uint64_t size, z->size());
  auto buf = std::make_unique_for_overwrite<uint8_t[]>(kCopyChunk);
  // Reading every byte runs each block through the CRC check and decompressor.
  for (uint64_t off = 0; off < size; off += kCopyChunk) {
    size_t want = size_t(std::min<uint64_t>(kCopyChunk, size - off));
    OBD_TRY(z->read_exact(buf.get(), want, off, Code::kZFILE_TRUNCATED, "ZFile content"));
  }
  return Status::ok();
}

Result<ZFileInfo> zfile_info(File& zf) {
  OBD_ASSIGN_OR_RETURN(zfile::Layout l, zfile::read_layout(zf));
  OBD_ASSIGN_OR_RETURN(zfile::JumpTable jt, zfile::read_jump_table(zf, l));
  ZFileInfo i;
  i.header = l.header;
  i.trailer = l.trailer;
  i.header_overwritten = l.header_overwritten;
  i.file_size = l.file_size;
  i.nblocks = l.nblocks;
  i.original_size = l.original_size;
  i.index_offset = l.index_offset;
  i.block_size = l.block_size;
  i.algo = l.algo;
  i.verify = l.verify;
  i.max_stored_block = jt.max_length();
  return i;
}

}  // namespace obd
