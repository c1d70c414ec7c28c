#include "layer/ops.h"

#include <cstring>

#include "layer/blob.h"
#include "layer/pending_file.h"
#include "lsmt/ro_layer.h"

namespace obd::layer {
namespace {

using lsmt::kSector;
using lsmt::Segment;

// Reads a segment's sectors from one backing file. Opening checked that
// every mapped extent lies inside the file, so a short read means the file
// was cut during the commit: fail rather than commit zeros.
lsmt::SegmentReader reader_for(File& f) {
  return [&f](const Segment& s, void* buf) -> Status {
    return f.read_exact(buf, size_t(s.length) * kSector, s.moffset * kSector, Code::kLSMT_TRUNCATED,
                        "mapped data");
  };
}

}  // namespace

Status create_layer(const std::string& data, const std::string& index, const lsmt::CreateOptions& opts,
                    const LayerInit& init) {
  if (data.empty() || index.empty()) return Status(Code::kEINVAL, "create_layer: data and index files are required");
  for (const std::string* p : {&data, &index}) {
    Status s = check_replaceable(*p, false);
    if (s.code() == Code::kEEXIST) return Status(Code::kEEXIST, *p + ": exists; a new layer's files must not exist");
    OBD_TRY(s);
  }
  OBD_ASSIGN_OR_RETURN(auto pdata, PendingFile::create(data));
  OBD_ASSIGN_OR_RETURN(auto pindex, PendingFile::create(index));
  OBD_TRY(lsmt::create_rw_layer(pdata->temp_path(), pindex->temp_path(), opts));
  OBD_TRY(pdata->adopt());
  OBD_TRY(pindex->adopt());
  if (init) OBD_TRY(init(pdata->temp_path(), opts.sparse ? "" : pindex->temp_path()));
  OBD_TRY(pdata->publish(false));
  Status s = pindex->publish(false);
  if (!s.is_ok()) pdata->unpublish();  // both or neither
  return s;
}

Status commit_rw_layer(const std::string& data, const std::string& index, const lsmt::CommitOptions& opts,
                       const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(data, index, false));
  std::vector<Segment> segs = rw->resolved();
  return write_output(out, [&](Sink& sink) {
           return lsmt::commit_segments(segs, reader_for(*rw->data_file()), rw->header(), opts, sink);
         }).status();
}

Status commit_sealed_layer(BlobOpener& opener, const LayerRef& sealed, const lsmt::CommitOptions& opts,
                           const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(OpenedBlob blob, open_blob(opener, sealed));
  OBD_ASSIGN_OR_RETURN(auto layer, lsmt::open_ro_layer(blob.content));
  return write_output(out, [&](Sink& sink) {
           return lsmt::commit_segments(layer->index.segments(), reader_for(*layer->file), layer->header, opts, sink);
         }).status();
}

Status seal_rw_layer(const std::string& data, const std::string& index) {
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(data, index, true));
  return rw->seal();
}

}  // namespace obd::layer
