#include "image/image.h"

#include "image/stack.h"
#include "zfile/layer_blob.h"

namespace obd {

Result<ImagePtr> open_image(const ImageSpec& spec) {
  std::vector<lsmt::RoLayerPtr> lowers;
  for (size_t i = 0; i < spec.lowers.size(); i++) {
    const std::string& path = spec.lowers[i].file;
    auto ctx = [&](const Status& s) { return s.with_context("lower layer " + std::to_string(i)); };
    auto blob = open_local(path, OpenMode::kRead, spec.engine);
    if (!blob) return ctx(blob.status());
    auto lsmt_file = open_layer_blob(blob.value());
    if (!lsmt_file) return ctx(lsmt_file.status());
    auto layer = lsmt::open_ro_layer(lsmt_file.value());
    if (!layer) return ctx(layer.status());
    lowers.push_back(std::move(layer).value());
  }
  std::unique_ptr<lsmt::RwLayer> upper;
  std::string name = "image";
  if (spec.upper) {
    auto rw = lsmt::RwLayer::open(spec.upper->data, spec.upper->index, true, spec.engine);
    if (!rw) return rw.status().with_context("upper layer");
    upper = std::move(rw).value();
    name = spec.upper->data;
  } else if (!spec.lowers.empty()) {
    name = spec.lowers.back().file;
  }
  OBD_ASSIGN_OR_RETURN(auto img, StackImage::create(std::move(lowers), std::move(upper), name));
  return ImagePtr(std::move(img));
}

}  // namespace obd
