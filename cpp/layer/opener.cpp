#include "layer/opener.h"

namespace obd::layer {
namespace {

class LocalOpener final : public BlobOpener {
 public:
  explicit LocalOpener(IoEngine engine) : engine_(engine) {}
  Result<FilePtr> open_read(const LayerRef& ref) override {
    if (ref.file.empty())
      return Status(Code::kENOENT, "layer " + ref.digest + ": no local file, and remote layers need the image service");
    return open_local(ref.file, OpenMode::kRead, engine_);
  }

 private:
  IoEngine engine_;
};

}  // namespace

OpenerPtr local_opener(IoEngine engine) { return std::make_shared<LocalOpener>(engine); }

}  // namespace obd::layer
