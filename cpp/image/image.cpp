#include "image/image.h"

#include "image/stack.h"
#include "layer/blob.h"

namespace obd {

Result<ImagePtr> open_image(const ImageSpec& spec) {
  layer::OpenerPtr opener = spec.opener ? spec.opener : layer::local_opener(spec.engine);
  std::vector<lsmt::RoLayerPtr> lowers;
  for (size_t i = 0; i < spec.lowers.size(); i++) {
    auto ctx = [&](const Status& s) { return s.with_context("lower layer " + std::to_string(i)); };
    auto blob = layer::open_blob(*opener, spec.lowers[i]);
    if (!blob) return ctx(blob.status());
    auto ro = lsmt::open_ro_layer(blob->content);
    if (!ro) return ctx(ro.status());
    lowers.push_back(std::move(ro).value());
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
