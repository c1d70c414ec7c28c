// A write-back cache of 4 KiB device pages in front of an obd::File, used by
// the ext2fs channel. Small reads and writes (metadata) go through it; large
// page-aligned transfers (file data) go straight to the File.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/status.h"
#include "io/file.h"

namespace obd::ext4 {

class PageCache {
 public:
  static constexpr uint64_t kPage = 4096;

  PageCache(FilePtr file, size_t capacity_pages, bool skip_unchanged);

  Status read(uint64_t off, size_t len, void* out);
  Status write(uint64_t off, size_t len, const void* in);
  // As write, for newly allocated blocks (file data): never compared with the
  // device at flush, since they are new by construction.
  Status write_fresh(uint64_t off, size_t len, const void* in);
  // Deallocates [off, off+len): it then reads as zeros.
  Status discard(uint64_t off, uint64_t len);
  // Writes back every dirty page.
  Status flush();

  FilePtr file() const { return file_; }
  uint64_t bytes_read = 0, bytes_written = 0;
  uint64_t hits = 0, misses = 0, skipped = 0;

 private:
  struct Page {
    uint64_t idx;
    bool dirty = false;
    bool fresh = false;  // dirty with new data: write without comparing
    std::unique_ptr<uint8_t[]> data;
  };
  using Lru = std::list<Page>;

  Page* find(uint64_t idx);
  Page* insert(uint64_t idx);  // new page at the LRU head (data uninitialised)
  Result<Page*> load(uint64_t idx);
  void drop_range(uint64_t first, uint64_t last);
  Status read_file(void* buf, size_t len, uint64_t off);  // zero-fills past EOF
  Status write_file(const void* buf, size_t len, uint64_t off);
  Status write_pages(uint64_t off, size_t len, const uint8_t* src, bool fresh);
  Status write_run(const std::vector<Page*>& run);
  Status maybe_evict();

  FilePtr file_;
  size_t capacity_;
  bool skip_unchanged_;
  Lru lru_;  // front = most recent
  std::unordered_map<uint64_t, Lru::iterator> map_;
  size_t dirty_count_ = 0;
  uint64_t dev_size_ = UINT64_MAX;  // read on first use
};

}  // namespace obd::ext4
