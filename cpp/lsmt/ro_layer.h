// A read-only LSMT layer: a committed file (overlaybd.commit) or a sealed RW
// data file (overlaybd.sealed). Index info always comes from the trailer.
#pragma once
#include <memory>

#include "io/file.h"
#include "lsmt/index.h"

namespace obd::lsmt {

struct RoLayer {
  FilePtr file;  // the LSMT bytes (tar/ZFile already unwrapped)
  Record header;
  Record trailer;
  RoIndex index;

  uint64_t virtual_size() const { return trailer.virtual_size; }
};

using RoLayerPtr = std::shared_ptr<const RoLayer>;

// Parses header, trailer and index of an LSMT file. `keep_tags` keeps the
// on-disk tags (TurboOCI); plain layers must ignore them.
Result<RoLayerPtr> open_ro_layer(FilePtr lsmt_file, bool keep_tags = false);

// Reads the raw index entries of a record (committed trailer or RW index file),
// including padding entries, after checking the count against the file size.
Result<std::vector<Segment>> read_raw_entries(File& f, uint64_t offset, uint64_t count, const std::string& what);

}  // namespace obd::lsmt
