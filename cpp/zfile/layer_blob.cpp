#include "zfile/layer_blob.h"

#include "tar/tar_wrapper.h"
#include "zfile/reader.h"

namespace obd {

Result<FilePtr> open_layer_blob(FilePtr blob) {
  OBD_ASSIGN_OR_RETURN(FilePtr payload, unwrap_tar(std::move(blob)));
  OBD_ASSIGN_OR_RETURN(bool z, is_zfile(*payload));
  if (!z) return payload;
  return open_zfile(std::move(payload));
}

}  // namespace obd
