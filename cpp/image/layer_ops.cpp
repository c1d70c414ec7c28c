#include "image/layer_ops.h"

#include <cstring>

#include "lsmt/ro_layer.h"
#include "lsmt/rw_layer.h"
#include "zfile/layer_blob.h"

namespace obd {
namespace {

using lsmt::kSector;
using lsmt::Segment;

// Reads a segment's sectors from one backing file; short reads are zeros.
lsmt::SegmentReader reader_for(File& f) {
  return [&f](const Segment& s, void* buf) -> Status {
    size_t len = size_t(s.length) * kSector;
    OBD_ASSIGN_OR_RETURN(size_t got, f.pread(buf, len, s.moffset * kSector));
    if (got < len) std::memset(static_cast<uint8_t*>(buf) + got, 0, len - got);
    return Status::ok();
  };
}

}  // namespace

Status commit_rw_layer(const std::string& data, const std::string& index, const lsmt::CommitOptions& opts,
                       const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(data, index, false));
  std::vector<Segment> segs = rw->resolved();
  return write_output(out, [&](Sink& sink) {
           return lsmt::commit_segments(segs, reader_for(*rw->data_file()), rw->header(), opts, sink);
         }).status();
}

Status commit_sealed_layer(const std::string& sealed, const lsmt::CommitOptions& opts, const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(FilePtr blob, open_local(sealed, OpenMode::kRead));
  OBD_ASSIGN_OR_RETURN(FilePtr f, open_layer_blob(blob));
  OBD_ASSIGN_OR_RETURN(auto layer, lsmt::open_ro_layer(f));
  return write_output(out, [&](Sink& sink) {
           return lsmt::commit_segments(layer->index.segments(), reader_for(*layer->file), layer->header, opts, sink);
         }).status();
}

Status seal_rw_layer(const std::string& data, const std::string& index) {
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(data, index, true));
  return rw->seal();
}

}  // namespace obd
