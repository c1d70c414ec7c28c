// One cached blob: its sparse data file, the map of fetched units, and the
// fetches in flight. Shared by every open of the blob's key; the store keeps
// it while any is open (and destroys every entry before itself).
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <unordered_map>

#include "cache/cache.h"
#include "cache/unit_map.h"

namespace obd::cache {

// What a store shares with its entries.
struct Context {
  CacheOptions opts;
  std::shared_ptr<CacheObserver> observer;
  // Runs before a read stores `bytes`: evicts synchronously above the risk mark.
  std::function<void(uint64_t bytes)> reserve;
  std::atomic<uint64_t> used{0}, hits{0}, misses{0}, fetched{0}, evicted{0};

  void emit(CacheEventKind kind, const std::string& key, uint64_t off, uint64_t len, uint64_t latency_us) const {
    if (observer) observer->on_cache(CacheEvent{kind, &key, off, len, latency_us});
  }
};

// One fetch of adjacent missing units from the source. Readers that need
// any of its units while it runs wait for it and copy its bytes or error.
struct Flight {
  uint64_t first = 0, count = 0;  // units
  uint64_t off = 0;               // blob offset of `first`
  std::vector<uint8_t> data;      // the units' bytes, clipped at the blob's end
  Status status;
  bool done = false;
  std::mutex m;
  std::condition_variable cv;

  void finish(Status s);
  const Status& wait();
};

class Entry {
 public:
  // Never fails: when the cache file cannot be opened or created the entry
  // passes reads through to the source (and reports kWriteFailed).
  static std::shared_ptr<Entry> open(Context& ctx, const std::string& key, uint64_t size);
  ~Entry();  // persists the map and closes the file

  const std::string& key() const { return key_; }
  uint64_t size() const { return size_; }

  // Fills each request (`done` = bytes, short only at the blob's end).
  Status read(File& source, std::span<ReadReq> reqs);
  // Forgets the units covering [off, off+len); the next read refetches them.
  Status invalidate(uint64_t off, uint64_t len);
  // Empties the file for eviction while it is open; returns the bytes freed.
  uint64_t empty();
  // Syncs the data, then saves the unit map, and stamps the access time on
  // the file (the LRU order after a restart).
  Status persist();
  int64_t last_access_ns() const { return last_access_ns_.load(std::memory_order_relaxed); }

  int opens = 0;  // guarded by the store's mutex

  Entry(Context& ctx, std::string key, uint64_t size);

 private:
  struct Use;
  Status try_read(File& source, std::span<ReadReq> reqs, bool& again);
  void fetch(File& source, std::span<const std::shared_ptr<Flight>> own, uint64_t gen);
  Status pass_through(File& source, std::span<ReadReq> reqs);
  void drop_past_end();
  uint64_t unit_end(uint64_t u) const { return std::min(size_, (u + 1) * unit_); }

  Context& ctx_;
  const std::string key_, path_, map_path_;
  const uint64_t size_;
  const uint32_t unit_;
  int fd_ = -1;  // -1: pass-through

  std::mutex persist_mu_;  // one persist or empty at a time; taken before mu_
  std::mutex mu_;          // map_, flights_, gen_, dirty_
  UnitMap map_;
  std::unordered_map<uint64_t, std::shared_ptr<Flight>> flights_;
  // Bumped when units' bytes may change under a reader (emptied, dropped):
  // a reader that copied present units re-reads them if it moved.
  uint64_t gen_ = 0;
  bool dirty_ = false;
  std::atomic<int64_t> last_access_ns_{0};
};

}  // namespace obd::cache
