// Decodes a layer file for `overlaybd inspect`: tar wrapper, ZFile header,
// LSMT header/trailer and index, as stored (padding entries counted).
#pragma once
#include <optional>
#include <vector>

#include "lsmt/format.h"
#include "layer/opener.h"
#include "tar/wrapper.h"
#include "zfile/convert.h"

namespace obd::layer {

struct LayerInspection {
  tar::WrapInfo tar;
  std::optional<ZFileInfo> zfile;
  uint64_t lsmt_size = 0;
  lsmt::Record header;
  std::optional<lsmt::Record> trailer;  // absent for an RW data file
  std::vector<lsmt::Segment> entries;   // valid entries as stored (tags kept)
  uint64_t padding_entries = 0;
};

Result<LayerInspection> inspect(BlobOpener& opener, const LayerRef& ref);

}  // namespace obd::layer
