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

// Names one layer blob: a local path, or a registry blob (config.v1.json's
// repoBlobUrl + "/" + digest) that a remote opener fetches on demand.
struct LayerRef {
  std::string file;     // local path; when set, nothing else is needed
  std::string url{};     // registry blob URL
  std::string digest{};  // sha256:<hex> of the blob
  uint64_t size = 0;     // blob size from the config; 0 = ask the registry
  std::string dir{};     // layer directory: background download target

  // Names the layer in messages: the path, else the digest.
  const std::string& label() const { return file.empty() ? digest : file; }
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
