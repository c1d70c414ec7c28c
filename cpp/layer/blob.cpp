#include "layer/blob.h"

#include "zfile/reader.h"

namespace obd::layer {

Result<OpenedBlob> open_blob(FilePtr blob, bool decompress) {
  OpenedBlob b;
  OBD_ASSIGN_OR_RETURN(b.tar, tar::probe(*blob));
  b.payload = tar::payload_of(std::move(blob), b.tar);
  OBD_ASSIGN_OR_RETURN(b.zfile, is_zfile(*b.payload));
  b.content = b.payload;
  if (b.zfile && decompress) {
    OBD_ASSIGN_OR_RETURN(b.content, open_zfile(b.payload));
  }
  return b;
}

Result<OpenedBlob> open_blob(BlobOpener& opener, const LayerRef& ref, bool decompress) {
  OBD_ASSIGN_OR_RETURN(FilePtr f, opener.open_read(ref));
  return open_blob(std::move(f), decompress);
}

}  // namespace obd::layer
