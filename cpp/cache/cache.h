// The file cache for remote blobs (format spec §6.2): one sparse local file
// per blob under a cache directory, filled in refill-size units as reads miss,
// evicted LRU over whole blobs. A cached blob is a File over its source File
// (the registry range reader); the layer readers above it do not change.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "io/file.h"

namespace obd::cache {

struct CacheOptions {
  std::string dir;                       // cacheDir; created if missing
  uint64_t capacity = 4ull << 30;        // cacheSizeGB in bytes
  uint32_t refill_size = 262144;         // power of two, multiple of 4096
  uint32_t evict_interval_ms = 10000;    // eviction timer (§6.2: 10 s); 0: no timer
  uint64_t min_free_bytes = 1ull << 30;  // also evict when the filesystem's free space is below this
};

enum class CacheEventKind { kHit, kMiss, kEvict, kInvalidate, kWriteFailed };

// kHit/kMiss: a range read from the cache file / fetched from the source;
// kEvict: a blob deleted or emptied (length = bytes freed); kInvalidate: a
// range dropped at a reader's request; kWriteFailed: the cache could not
// store a range (length 0: could not open the cache file at all).
struct CacheEvent {
  CacheEventKind kind;
  const std::string* key;
  uint64_t offset, length, latency_us;
};

class CacheObserver {
 public:
  virtual ~CacheObserver() = default;
  virtual void on_cache(const CacheEvent&) = 0;  // any thread; must not block
};

// Eviction thresholds (§6.2) for a capacity in bytes.
struct Marks {
  uint64_t water;  // evict LRU blobs until usage is under this
  uint64_t risk;   // above this, a read evicts before it stores more
};
Marks marks_for(uint64_t capacity);

class Entry;
struct Context;

// Thread-safe; one per service. Open files keep their store alive.
class CacheStore : public std::enable_shared_from_this<CacheStore> {
 public:
  // Fails only on bad options (EINVAL naming the field). An unusable
  // directory (read-only, full, not a directory) still opens: its blobs are
  // then read straight from their sources (kWriteFailed events).
  static Result<std::shared_ptr<CacheStore>> open(CacheOptions, std::shared_ptr<CacheObserver> = nullptr);
  ~CacheStore();
  CacheStore(const CacheStore&) = delete;
  CacheStore& operator=(const CacheStore&) = delete;

  // A File serving `source` (size known) through the cache file for `key`
  // (a digest "sha256:<hex>"). Opens of one key share the cached units.
  Result<FilePtr> open(const std::string& key, FilePtr source);

  // One eviction pass now (tests; the timer calls it too).
  Status evict_once();

  struct Stats {
    uint64_t used_bytes;     // allocated bytes in the directory (last pass + writes since)
    uint64_t hits, misses;   // units read from the cache file / fetched from a source
    uint64_t fetched_bytes;  // bytes read from sources
    uint64_t evicted_files;  // blobs deleted or emptied
  };
  Stats stats() const;

 private:
  friend class CachedFile;
  explicit CacheStore(std::shared_ptr<Context> ctx);
  // Evicts LRU blobs until `incoming` more bytes fit under the water mark.
  Status evict_locked(uint64_t incoming);
  void persist_all();
  void release(const std::shared_ptr<Entry>& e);
  void run_timer();

  std::shared_ptr<Context> ctx_;
  std::mutex mu_;  // entries_, and every eviction pass
  std::map<std::string, std::shared_ptr<Entry>> entries_;
  std::mutex timer_mu_;
  std::condition_variable timer_cv_;
  bool stop_ = false;
  std::thread timer_;
};

}  // namespace obd::cache
