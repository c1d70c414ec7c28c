// Where layer blobs come from: an injected opener, as LevelDB's Env. Every
// read of a layer blob (open_image, inspect, commit --commit_sealed, the
// ZFile tools) asks a BlobOpener for the blob's File; the local opener
// resolves a path and opens it with an I/O engine. A remote registry blob
// behind a local cache will be one more opener; nothing above it changes.
#pragma once
#include <memory>
#include <string>

#include "io/file.h"

namespace obd::layer {

// Names one layer blob. Today a local path; later a digest and a repository.
struct LayerRef {
  std::string file;
};

class BlobOpener {
 public:
  virtual ~BlobOpener() = default;
  // Opens the blob for reading; it may be read from many threads at once.
  virtual Result<FilePtr> open_read(const LayerRef& ref) = 0;
};

using OpenerPtr = std::shared_ptr<BlobOpener>;

// Opens `ref.file` as a local file through `engine`.
OpenerPtr local_opener(IoEngine engine = default_io_engine());

}  // namespace obd::layer
