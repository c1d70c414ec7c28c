// A File whose backing file can be replaced while reads are in flight: the
// background download switches a layer from its remote blob to the local
// copy. A read that loaded the old file finishes on it (it holds a
// reference); reads that start after switch_to() use the new one.
#pragma once
#include <atomic>
#include <memory>
#include <string>

#include "io/file.h"

namespace obd::download {

class SwitchableFile final : public File {
 public:
  SwitchableFile(FilePtr inner, std::string name);

  // Later reads go to `next` (a null `next` is ignored).
  void switch_to(FilePtr next);
  FilePtr current() const { return cur_.load(std::memory_order_acquire); }
  bool switched() const { return switched_.load(std::memory_order_acquire); }

  // Our own name: a reference into the current file could dangle after a switch.
  const std::string& name() const override { return name_; }
  Result<uint64_t> size() override { return current()->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override { return current()->pread(buf, len, off); }
  Status pread_batch(std::span<ReadReq> reqs) override { return current()->pread_batch(reqs); }
  Result<std::vector<Extent>> data_extents(uint64_t from) override { return current()->data_extents(from); }
  // A cached remote blob drops bad units; a local copy refuses (ENOTSUP).
  Status invalidate(uint64_t off, uint64_t len) override { return current()->invalidate(off, len); }

 private:
  // libstdc++ spins on a lock bit held only while a load takes its reference:
  // readers never sleep on a mutex. (TSan flags that load, which unlocks
  // with a relaxed RMW: google/sanitizers#1558, libstdc++ 12 to 15.)
  std::atomic<std::shared_ptr<File>> cur_;
  std::atomic<bool> switched_{false};
  std::string name_;
};

}  // namespace obd::download
