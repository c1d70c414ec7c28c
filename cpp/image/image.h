// An overlaybd image: read-only layers (bottom first) plus an optional
// writable upper, presented as one File whose bytes are the virtual block
// device. This is what frontends (FUSE, TCMU, ublk), the ext4 code and
// `overlaybd dump` read and write. All I/O must be 512-byte aligned.
#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "io/file.h"
#include "layer/opener.h"

namespace obd {

// A lower layer blob: LSMT, ZFile(LSMT) or tar(ZFile(LSMT)).
using LowerSpec = layer::LayerRef;

struct UpperSpec {
  std::string data;   // RW data file
  std::string index;  // RW index file; ignored (may be empty) for a sparse layer
};

struct ImageSpec {
  std::vector<LowerSpec> lowers;  // bottom first, at most 255
  std::optional<UpperSpec> upper;
  IoEngine engine = default_io_engine();
  // Where lower blobs come from; null: local files through `engine`.
  layer::OpenerPtr opener;
  // Wraps each lower's LSMT content before it is stacked (trace recording
  // sees the reads of each lower layer file, §6.4).
  std::function<FilePtr(size_t layer, FilePtr content)> wrap_lower;
};

class Image : public File {
 public:
  // Virtual device size in bytes.
  virtual uint64_t virtual_size() const = 0;
  virtual bool writable() const = 0;
  // pread/pwrite/punch_hole(discard)/sync as File; size() == virtual_size().
  // Makes [off, off+len) read as zeros (the block layer's WRITE_ZEROES).
  // `may_unmap` allows deallocating instead where that still reads as zeros.
  virtual Status write_zeroes(uint64_t off, uint64_t len, bool may_unmap) = 0;
  // Live snapshot (§6.6): seals the writable upper in place, stacks it as the
  // top read-only layer and goes on writing to `next`, a fresh upper of the
  // same virtual size. I/O in flight finishes first; an error before the
  // seal leaves the image as it was. Only a layer stack can do this.
  virtual Status snapshot(const UpperSpec& next) {
    return Status(Code::kENOTSUP, name() + ": this image has no layer stack to snapshot");
  }
};

using ImagePtr = std::shared_ptr<Image>;

Result<ImagePtr> open_image(const ImageSpec& spec);

}  // namespace obd
