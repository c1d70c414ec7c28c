// The layer stack behind an Image: read-only lowers merged into one index,
// plus an optional writable upper consulted first (§2.6).
#pragma once
#include <memory>
#include <vector>

#include "image/image.h"
#include "lsmt/ro_layer.h"
#include "lsmt/rw_layer.h"

namespace obd {

class StackImage final : public Image {
 public:
  // `lowers` bottom first; `upper` may be null.
  // `engine` opens the uppers of later snapshots.
  static Result<std::shared_ptr<StackImage>> create(std::vector<lsmt::RoLayerPtr> lowers,
                                                     std::unique_ptr<lsmt::RwLayer> upper, std::string name,
                                                     IoEngine engine = default_io_engine());

  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override { return vsize_; }
  uint64_t virtual_size() const override { return vsize_; }
  bool writable() const override { return writable_; }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override;
  Status pwrite(const void* buf, size_t len, uint64_t off) override;
  Status punch_hole(uint64_t off, uint64_t len) override;
  Status write_zeroes(uint64_t off, uint64_t len, bool may_unmap) override;
  Status sync() override;
  // Byte ranges that may hold data (mapped, non-zeroed extents of any layer),
  // coalesced; everything else reads as zeros. Lets a dump stay sparse.
  Result<std::vector<Extent>> data_extents(uint64_t from) override;
  // Defined in image/snapshot.cpp.
  Status snapshot(const UpperSpec& next) override;

  // Not safe against a concurrent snapshot (tools and benchmarks only).
  const lsmt::RoIndex& merged_index() const { return merged_; }

 private:
  StackImage() = default;
  Status read_aligned(uint8_t* buf, uint64_t lba, uint64_t nsect);
  Status check_write(uint64_t off, uint64_t len, const char* op) const;

  Status restack(std::unique_ptr<lsmt::RwLayer> next);

  std::string name_;
  IoEngine engine_ = default_io_engine();
  // Guards the stack's shape (lowers_, by_tag_, merged_, upper_): every
  // request holds it shared, a snapshot exclusively, so the swap happens
  // between requests. Taken before the upper's own lock.
  mutable RwMutex stack_mu_;
  std::vector<lsmt::RoLayerPtr> lowers_;  // bottom first
  std::vector<File*> by_tag_;             // merged-index tag -> file (0 = top-most lower)
  lsmt::RoIndex merged_;
  std::unique_ptr<lsmt::RwLayer> upper_;
  uint64_t vsize_ = 0;     // never changes: a snapshot keeps the size
  bool writable_ = false;  // never changes: a snapshot keeps an upper
};

}  // namespace obd
