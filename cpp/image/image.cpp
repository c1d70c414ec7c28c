#include "image/image.h"

#include <algorithm>
#include <atomic>
#include <thread>

#include "image/stack.h"
#include "layer/blob.h"

namespace obd {
namespace {

Result<lsmt::RoLayerPtr> open_lower(const ImageSpec& spec, layer::BlobOpener& opener, size_t i) {
  auto ctx = [&](const Status& s) { return s.with_context("lower layer " + std::to_string(i)); };
  auto blob = layer::open_blob(opener, spec.lowers[i]);
  if (!blob) return ctx(blob.status());
  FilePtr content = spec.wrap_lower ? spec.wrap_lower(i, blob->content) : blob->content;
  auto ro = lsmt::open_ro_layer(std::move(content));
  if (!ro) return ctx(ro.status());
  return std::move(ro).value();
}

// Opens every lower; a remote one costs round trips (size, headers, index),
// so up to 32 are opened at once as upstream does (§5.1).
Result<std::vector<lsmt::RoLayerPtr>> open_lowers(const ImageSpec& spec, layer::BlobOpener& opener) {
  size_t n = spec.lowers.size();
  std::vector<Result<lsmt::RoLayerPtr>> got(n, Status(Code::kINTERNAL, "not opened"));
  bool remote = std::any_of(spec.lowers.begin(), spec.lowers.end(), [](const auto& l) { return l.file.empty(); });
  size_t threads = remote ? std::min<size_t>(n, 32) : 1;
  if (threads <= 1) {
    for (size_t i = 0; i < n; i++) got[i] = open_lower(spec, opener, i);
  } else {
    std::atomic<size_t> next{0};
    std::vector<std::thread> pool;
    for (size_t t = 0; t < threads; t++)
      pool.emplace_back([&] {
        for (size_t i; (i = next++) < n;) got[i] = open_lower(spec, opener, i);
      });
    for (auto& th : pool) th.join();
  }
  std::vector<lsmt::RoLayerPtr> lowers;
  for (auto& r : got) {
    if (!r) return r.status();
    lowers.push_back(std::move(r).value());
  }
  return lowers;
}

}  // namespace

Result<ImagePtr> open_image(const ImageSpec& spec) {
  layer::OpenerPtr opener = spec.opener ? spec.opener : layer::local_opener(spec.engine);
  OBD_ASSIGN_OR_RETURN(auto lowers, open_lowers(spec, *opener));
  std::unique_ptr<lsmt::RwLayer> upper;
  std::string name = "image";
  if (spec.upper) {
    auto rw = lsmt::RwLayer::open(spec.upper->data, spec.upper->index, true, spec.engine);
    if (!rw) return rw.status().with_context("upper layer");
    upper = std::move(rw).value();
    name = spec.upper->data;
  } else if (!spec.lowers.empty()) {
    name = spec.lowers.back().label();
  }
  OBD_ASSIGN_OR_RETURN(auto img, StackImage::create(std::move(lowers), std::move(upper), name, spec.engine));
  return ImagePtr(std::move(img));
}

}  // namespace obd
