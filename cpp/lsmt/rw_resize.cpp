// Resizing a writable layer in place (§6.7): upstream's update_vsize
// rewrites the virtual_size of the data and index file headers; a sparse
// data file also holds the device image, so its length follows.
#include "lsmt/rw_layer.h"

namespace obd::lsmt {

namespace {

Status rewrite_vsize(File& f, uint64_t vsize) {
  uint8_t rec[kHeaderSize];
  OBD_TRY(f.read_exact(rec, kHeaderSize, 0, Code::kLSMT_TRUNCATED, "header"));
  OBD_ASSIGN_OR_RETURN(Record r, decode_record(rec, f.name() + " header"));
  r.virtual_size = vsize;
  encode_record(r, rec);
  OBD_TRY(f.pwrite(rec, kHeaderSize, 0));
  return f.sync();
}

}  // namespace

Status RwLayer::set_virtual_size(uint64_t vsize) {
  if (vsize == 0 || vsize % kSector)
    return Status(Code::kEINVAL, data_->name() + ": virtual size " + std::to_string(vsize) +
                                     " must be a positive multiple of 512 bytes");
  uint64_t old = virtual_size();
  if (vsize < old) {
    // What lay beyond the new end must not come back if the layer grows
    // again: an append layer logs it as discarded, a sparse one loses it
    // with the truncation below.
    uint64_t from = vsize / kSector;
    if (!sparse()) OBD_TRY(discard(from, old / kSector - from));
  }
  std::unique_lock punch(punch_mu_, std::defer_lock);
  if (sparse()) punch.lock();
  std::unique_lock lock(mu_);
  if (sealed_) return Status(Code::kEROFS, data_->name() + ": layer is sealed");
  if (sparse()) {
    OBD_TRY(data_->truncate(kHeaderSize + vsize));
    if (vsize < old) index_.erase(vsize / kSector, (old - vsize) / kSector);
  }
  // The index file's header is the one an open reads; write it last, so a
  // crash between leaves the old size in force.
  OBD_TRY(rewrite_vsize(*data_, vsize));
  if (!sparse()) OBD_TRY(rewrite_vsize(*index_file_, vsize));
  header_.virtual_size = vsize;
  return Status::ok();
}

}  // namespace obd::lsmt
