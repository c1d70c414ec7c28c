// Which refill units of a cached blob hold fetched bytes, and the sidecar
// file that remembers them across restarts.
//
// Why a sidecar and not SEEK_DATA: a crash in the middle of writing a unit
// leaves it allocated but half written, so "allocated" does not mean
// "fetched". The sidecar is only ever replaced by a complete, synced copy
// (temporary file, fsync, rename) written after the data file was synced,
// so every unit it marks was fully on disk before the mark was.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"

namespace obd::cache {

class UnitMap {
 public:
  explicit UnitMap(uint64_t units = 0) : units_(units), words_((units + 63) / 64, 0) {}

  uint64_t units() const { return units_; }
  bool test(uint64_t u) const { return words_[u / 64] >> (u % 64) & 1; }
  void set(uint64_t u) { words_[u / 64] |= uint64_t(1) << (u % 64); }
  void clear(uint64_t u) { words_[u / 64] &= ~(uint64_t(1) << (u % 64)); }
  void clear_all() { std::fill(words_.begin(), words_.end(), 0); }
  bool any() const;

  // Writes `path` atomically (temporary, fsync, rename, directory fsync).
  Status save(const std::string& path, uint64_t blob_size, uint32_t unit) const;
  // The map saved for a blob of this size and unit; none when the file is
  // missing, damaged or was written for other parameters.
  static std::optional<UnitMap> load(const std::string& path, uint64_t blob_size, uint32_t unit);

 private:
  uint64_t units_;
  std::vector<uint64_t> words_;
};

}  // namespace obd::cache
