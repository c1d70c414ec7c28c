#include "layer/inspect.h"

#include "layer/blob.h"
#include "lsmt/ro_layer.h"

namespace obd::layer {

Result<LayerInspection> inspect(BlobOpener& opener, const LayerRef& ref) {
  LayerInspection r;
  const std::string& path = ref.file;
  OBD_ASSIGN_OR_RETURN(OpenedBlob blob, open_blob(opener, ref));
  r.tar = blob.tar;
  if (blob.zfile) {
    OBD_ASSIGN_OR_RETURN(r.zfile, zfile_info(*blob.payload));
  }
  FilePtr f = blob.content;
  OBD_ASSIGN_OR_RETURN(r.lsmt_size, f->size());
  uint8_t rec[lsmt::kHeaderSize];
  OBD_TRY(f->read_exact(rec, sizeof rec, 0, Code::kLSMT_TRUNCATED, "header"));
  OBD_ASSIGN_OR_RETURN(r.header, lsmt::decode_record(rec, path + " header"));
  if (!r.header.is_data()) {
    // An RW index file: its entries follow the header in write order.
    uint64_t n = (r.lsmt_size - lsmt::kHeaderSize) / lsmt::kSegmentSize;
    if (n > lsmt::kMaxRwIndexSize) return Status(Code::kLSMT_INDEX_TOO_LARGE, path + ": too many entries");
    OBD_ASSIGN_OR_RETURN(r.entries, lsmt::read_raw_entries(*f, lsmt::kHeaderSize, n, path));
    return r;
  }
  if (r.lsmt_size < 2 * lsmt::kHeaderSize) return r;
  OBD_TRY(f->read_exact(rec, sizeof rec, r.lsmt_size - lsmt::kHeaderSize, Code::kLSMT_TRUNCATED, "trailer"));
  auto t = lsmt::decode_record(rec, path + " trailer");
  if (!t || t->is_header() || !t->is_sealed()) return r;  // an RW data file
  r.trailer = t.value();
  if (t->index_size > lsmt::kMaxRoIndexSize || t->index_offset > r.lsmt_size)
    return Status(Code::kLSMT_BAD_HEADER, path + " trailer: index_offset/index_size out of range");
  OBD_ASSIGN_OR_RETURN(auto raw, lsmt::read_raw_entries(*f, t->index_offset, t->index_size, path));
  for (auto& s : raw) {
    if (s.is_invalid()) {
      r.padding_entries++;
    } else {
      r.entries.push_back(s);
    }
  }
  return r;
}

}  // namespace obd::layer
