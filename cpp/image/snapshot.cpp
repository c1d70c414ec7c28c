// Live snapshot of a StackImage (§6.6), as upstream's create_snapshot: the
// writable upper is sealed in place (§2.4) and becomes the top read-only
// layer; a fresh upper takes the writes. Everything that can fail without
// harm (opening the new upper, limits) is checked before the seal.
#include <mutex>

#include "image/stack.h"

namespace obd {

Status StackImage::snapshot(const UpperSpec& next) {
  if (next.data.empty()) return Status(Code::kEINVAL, name_ + ": snapshot: the new upper has no data file");
  // Opened (and locked) before anything changes, so a bad path, a sealed or
  // busy layer fails with the image untouched.
  auto rw = lsmt::RwLayer::open(next.data, next.index, true, engine_);
  if (!rw) return rw.status().with_context("snapshot: new upper");
  return restack(std::move(rw).value());
}

Status StackImage::restack(std::unique_ptr<lsmt::RwLayer> next) {
  const std::string what = name_ + ": snapshot";
  if (!writable_) return Status(Code::kEROFS, what + ": the image has no writable upper layer to seal");
  if (next->virtual_size() != vsize_)
    return Status(Code::kEINVAL, what + ": the new upper's virtual size " + std::to_string(next->virtual_size()) +
                                     " differs from the device's " + std::to_string(vsize_));
  // Waits for the requests in flight; new ones wait for the swap.
  std::unique_lock stack(stack_mu_);
  if (!upper_) return Status(Code::kEROFS, what + ": the image has no writable upper layer to seal");
  if (lowers_.size() + 1 > lsmt::kMaxStackLayers)
    return Status(Code::kLSMT_TOO_MANY_LAYERS, what + ": the stack already holds " + std::to_string(lowers_.size()) +
                                                   " read-only layers; sealing the upper would pass 255");
  size_t entries = upper_->resolved().size();
  if (entries > lsmt::kMaxRoIndexSize)
    return Status(Code::kLSMT_INDEX_TOO_LARGE, what + ": the upper maps " + std::to_string(entries) +
                                                   " extents; a read-only layer holds at most 1000000");
  // From here the old upper is spent: sealing writes its index and trailer
  // and syncs, so every write acknowledged so far is durable in the sealed
  // file. A failure below leaves the device refusing writes (EROFS).
  OBD_TRY(upper_->sync());
  OBD_TRY(upper_->seal());
  auto sealed = lsmt::open_ro_layer(upper_->data_file());
  if (!sealed) return sealed.status().with_context(what + ": reopening the sealed upper");
  std::vector<const lsmt::RoIndex*> top_first{&(*sealed)->index};
  for (auto it = lowers_.rbegin(); it != lowers_.rend(); ++it) top_first.push_back(&(*it)->index);
  auto merged = lsmt::merge_indexes(top_first);
  if (!merged) return merged.status().with_context(what + ": merging the sealed upper");
  merged_ = std::move(merged).value();
  by_tag_.insert(by_tag_.begin(), (*sealed)->file.get());
  lowers_.push_back(std::move(sealed).value());
  // The old RwLayer goes; its data file lives on in the new lower.
  upper_ = std::move(next);
  return Status::ok();
}

}  // namespace obd
