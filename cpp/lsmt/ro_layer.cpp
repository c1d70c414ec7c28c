#include "lsmt/ro_layer.h"

namespace obd::lsmt {

Result<std::vector<Segment>> read_raw_entries(File& f, uint64_t offset, uint64_t count, const std::string& what) {
  std::vector<Segment> out;
  out.reserve(count);
  constexpr uint64_t kChunk = 4096;  // entries a read
  std::vector<uint8_t> buf(kChunk * kSegmentSize);
  for (uint64_t done = 0; done < count;) {
    uint64_t n = std::min(kChunk, count - done);
    OBD_TRY(f.read_exact(buf.data(), n * kSegmentSize, offset + done * kSegmentSize, Code::kLSMT_TRUNCATED,
                         (what + " index").c_str()));
    for (uint64_t i = 0; i < n; i++) out.push_back(decode_segment(buf.data() + i * kSegmentSize));
    done += n;
  }
  return out;
}

Result<RoLayerPtr> open_ro_layer(FilePtr file, bool keep_tags) {
  const std::string& name = file->name();
  OBD_ASSIGN_OR_RETURN(uint64_t size, file->size());
  if (size < 2 * kHeaderSize)
    return Status(Code::kLSMT_TRUNCATED, name + ": " + std::to_string(size) +
                                             " bytes is too small for an LSMT layer (header + trailer = 8192)");
  auto layer = std::make_shared<RoLayer>();
  layer->file = file;
  uint8_t rec[kHeaderSize];
  OBD_TRY(file->read_exact(rec, kHeaderSize, 0, Code::kLSMT_TRUNCATED, "header"));
  OBD_ASSIGN_OR_RETURN(layer->header, decode_record(rec, name + " header"));
  if (!layer->header.is_header() || !layer->header.is_data())
    return Status(Code::kLSMT_BAD_HEADER, name + " header: flags " + std::to_string(layer->header.flags) +
                                              " lack the header and data bits (an RW index file?)");
  uint64_t trailer_off = size - kHeaderSize;
  OBD_TRY(file->read_exact(rec, kHeaderSize, trailer_off, Code::kLSMT_TRUNCATED, "trailer"));
  auto trailer = decode_record(rec, name + " trailer (at offset " + std::to_string(trailer_off) + ")");
  if (!trailer) {
    if (trailer.status().code() == Code::kLSMT_BAD_MAGIC)
      return Status(Code::kLSMT_NOT_SEALED, name + ": no trailer at offset " + std::to_string(trailer_off) +
                                                ": not a committed or sealed layer (an RW data file?)");
    return trailer.status();
  }
  Record& t = layer->trailer = trailer.value();
  if (t.is_header() || !t.is_data() || !t.is_sealed())
    return Status(Code::kLSMT_BAD_HEADER, name + " trailer: flags " + std::to_string(t.flags) +
                                              " must be data+sealed without the header bit");
  if (t.index_size > kMaxRoIndexSize)
    return Status(Code::kLSMT_INDEX_TOO_LARGE, name + " trailer: field index_size " + std::to_string(t.index_size) +
                                                   " exceeds 1000000 entries");
  if (t.index_offset < kHeaderSize || t.index_offset > trailer_off ||
      t.index_size * kSegmentSize > trailer_off - t.index_offset)
    return Status(Code::kLSMT_BAD_HEADER, name + " trailer: field index_offset " + std::to_string(t.index_offset) +
                                              " with index_size " + std::to_string(t.index_size) +
                                              " does not fit between the header and the trailer at " +
                                              std::to_string(trailer_off));
  OBD_ASSIGN_OR_RETURN(auto raw, read_raw_entries(*file, t.index_offset, t.index_size, name));
  OBD_ASSIGN_OR_RETURN(auto segs, validate_ro_index(std::move(raw), t.index_offset / kSector, keep_tags, name));
  layer->index = RoIndex(std::move(segs));
  return RoLayerPtr(std::move(layer));
}

}  // namespace obd::lsmt
