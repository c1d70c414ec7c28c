#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "cache/cache.h"
#include "cache/entry.h"
#include "io/nowait.h"

namespace obd::cache {
namespace {

constexpr uint64_t kGiB = 1ull << 30;

uint64_t sat_sub(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

// Keys name files in the cache directory: a digest's characters only, so a
// key can neither leave the directory nor look like a sidecar ("*.map").
bool valid_key(const std::string& key) {
  if (key.empty() || key.size() > 200) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' || c == '_' ||
           c == '-' || c == '+' || c == '=';
  });
}

}  // namespace

Marks marks_for(uint64_t capacity) {
  Marks m;
  m.water = std::max(capacity / 10 * 9 + capacity % 10 * 9 / 10, sat_sub(capacity, 50 * kGiB));
  m.risk = std::max(sat_sub(capacity, 5 * kGiB), m.water + (capacity - m.water) / 2);
  return m;
}

// The File a store hands out: reads go through the blob's entry.
class CachedFile final : public File {
 public:
  CachedFile(std::shared_ptr<CacheStore> store, std::shared_ptr<Entry> entry, FilePtr source)
      : store_(std::move(store)), entry_(std::move(entry)), source_(std::move(source)) {}
  ~CachedFile() override { store_->release(entry_); }

  const std::string& name() const override { return entry_->key(); }
  Result<uint64_t> size() override { return entry_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    ReadReq r{buf, len, off};
    OBD_TRY(pread_batch({&r, 1}));
    return r.done;
  }
  // A read may fetch or wait for another reader's fetch: never inline.
  Status pread_batch(std::span<ReadReq> reqs) override {
    if (nowait_active()) return would_block(name());
    return entry_->read(*source_, reqs);
  }
  Status invalidate(uint64_t off, uint64_t len) override { return entry_->invalidate(off, len); }

 private:
  std::shared_ptr<CacheStore> store_;  // declared first: the entry goes before the store
  std::shared_ptr<Entry> entry_;
  FilePtr source_;
};

CacheStore::CacheStore(std::shared_ptr<Context> ctx) : ctx_(std::move(ctx)) {}

CacheStore::~CacheStore() {
  {
    std::lock_guard<std::mutex> g(timer_mu_);
    stop_ = true;
  }
  timer_cv_.notify_all();
  if (timer_.joinable()) timer_.join();
}

Result<std::shared_ptr<CacheStore>> CacheStore::open(CacheOptions opts, std::shared_ptr<CacheObserver> observer) {
  if (opts.dir.empty()) return Status(Code::kEINVAL, "cache options: cacheDir is empty");
  if (opts.capacity == 0) return Status(Code::kEINVAL, "cache options: cacheSizeGB is 0");
  uint32_t r = opts.refill_size;
  if (r < 4096 || (r & (r - 1)) != 0)
    return Status(Code::kEINVAL, "cache options: refillSize " + std::to_string(r) +
                                     " is not a power of two of at least 4096");
  // An unusable directory is no error here: its blobs are read through.
  std::error_code ec;
  std::filesystem::create_directories(opts.dir, ec);
  // Sidecars half written when a process died.
  if (DIR* d = ::opendir(opts.dir.c_str())) {
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n.size() > 4 && n.compare(n.size() - 4, 4, ".tmp") == 0) ::unlinkat(::dirfd(d), n.c_str(), 0);
    }
    ::closedir(d);
  }

  auto ctx = std::make_shared<Context>();
  ctx->opts = std::move(opts);
  ctx->observer = std::move(observer);
  std::shared_ptr<CacheStore> store(new CacheStore(ctx));
  // Entries never outlive the store (open files hold it), so they may call it.
  CacheStore* raw = store.get();
  ctx->reserve = [raw](uint64_t bytes) {
    const Context& c = *raw->ctx_;
    if (c.used.load() + bytes > marks_for(c.opts.capacity).risk) {
      std::lock_guard<std::mutex> g(raw->mu_);
      (void)raw->evict_locked(bytes);
    }
  };
  (void)store->evict_once();  // a restart over a full cache evicts at once
  if (ctx->opts.evict_interval_ms > 0) store->timer_ = std::thread([raw] { raw->run_timer(); });
  return store;
}

Result<FilePtr> CacheStore::open(const std::string& key, FilePtr source) {
  if (!valid_key(key)) return Status(Code::kEINVAL, "cache: key \"" + key + "\" is not a digest");
  if (!source) return Status(Code::kEINVAL, "cache: no source for " + key);
  auto size = source->size();
  if (!size) return size.status().with_context(key);
  std::shared_ptr<Entry> e;
  {
    std::lock_guard<std::mutex> g(mu_);
    auto& slot = entries_[key];
    if (slot && slot->size() != size.value()) {
      return Status(Code::kEINVAL, "cache: " + key + " is open with size " + std::to_string(slot->size()) +
                                       ", its new source has " + std::to_string(size.value()));
    }
    if (!slot) slot = Entry::open(*ctx_, key, size.value());
    slot->opens++;
    e = slot;
  }
  return FilePtr(std::make_shared<CachedFile>(shared_from_this(), std::move(e), std::move(source)));
}

void CacheStore::release(const std::shared_ptr<Entry>& e) {
  std::shared_ptr<Entry> last;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (--e->opens > 0) return;
    auto it = entries_.find(e->key());
    last = std::move(it->second);
    entries_.erase(it);
    // Persisted under the lock: a new open of the key must find the map
    // this entry leaves, not race with it.
    (void)last->persist();
  }
}

CacheStore::Stats CacheStore::stats() const {
  const Context& c = *ctx_;
  return Stats{c.used.load(), c.hits.load(), c.misses.load(), c.fetched.load(), c.evicted.load()};
}

Status CacheStore::evict_once() {
  std::lock_guard<std::mutex> g(mu_);
  return evict_locked(0);
}

Status CacheStore::evict_locked(uint64_t incoming) {
  const CacheOptions& o = ctx_->opts;
  struct Blob {
    std::string key;
    uint64_t bytes = 0;  // data file and sidecar
    int64_t access_ns = 0;
    bool data = false;
  };
  std::map<std::string, Blob> blobs;
  uint64_t used = 0;
  DIR* d = ::opendir(o.dir.c_str());
  if (!d) return Status::from_errno(errno, "cache: open directory " + o.dir);
  while (dirent* de = ::readdir(d)) {
    std::string n = de->d_name;
    struct stat st;
    if (n == "." || n == ".." || ::fstatat(::dirfd(d), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        !S_ISREG(st.st_mode))
      continue;
    uint64_t bytes = uint64_t(st.st_blocks) * 512;
    used += bytes;
    bool sidecar = n.size() > 4 && n.compare(n.size() - 4, 4, ".map") == 0;
    std::string key = sidecar ? n.substr(0, n.size() - 4) : n;
    if (!sidecar && !valid_key(key)) continue;  // not ours: counted, never deleted
    Blob& b = blobs[key];
    b.key = key;
    b.bytes += bytes;
    if (!sidecar) {
      b.data = true;
      b.access_ns = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    }
  }
  ::closedir(d);

  struct statvfs vfs;
  uint64_t free_bytes = ::statvfs(o.dir.c_str(), &vfs) == 0 ? uint64_t(vfs.f_bavail) * vfs.f_frsize : UINT64_MAX;
  const uint64_t water = marks_for(o.capacity).water;
  std::vector<Blob*> lru;
  for (auto& [key, b] : blobs) {
    if (!b.data) {  // a sidecar whose blob is gone
      if (::unlink((o.dir + "/" + key + ".map").c_str()) == 0) used = sat_sub(used, b.bytes);
      continue;
    }
    if (auto it = entries_.find(key); it != entries_.end())
      b.access_ns = std::max(b.access_ns, it->second->last_access_ns());
    lru.push_back(&b);
  }
  std::sort(lru.begin(), lru.end(), [](const Blob* a, const Blob* b) { return a->access_ns < b->access_ns; });
  for (Blob* b : lru) {
    if (used + incoming <= water && free_bytes >= o.min_free_bytes + incoming) break;
    uint64_t freed = 0;
    if (auto it = entries_.find(b->key); it != entries_.end()) {
      freed = it->second->empty();  // open: emptied, its reads refetch
    } else if (b->bytes > 0) {
      std::string path = o.dir + "/" + b->key;
      // The sidecar first: a data file without one is never trusted.
      ::unlink((path + ".map").c_str());
      if (::unlink(path.c_str()) == 0) freed = b->bytes;
    }
    if (freed == 0) continue;
    used = sat_sub(used, freed);
    free_bytes = free_bytes > UINT64_MAX - freed ? UINT64_MAX : free_bytes + freed;
    ctx_->evicted++;
    ctx_->emit(CacheEventKind::kEvict, b->key, 0, freed, 0);
  }
  ctx_->used = used;
  return Status::ok();
}

void CacheStore::persist_all() {
  std::lock_guard<std::mutex> g(mu_);
  for (auto& [key, e] : entries_) (void)e->persist();
}

void CacheStore::run_timer() {
  std::unique_lock<std::mutex> g(timer_mu_);
  while (!timer_cv_.wait_for(g, std::chrono::milliseconds(ctx_->opts.evict_interval_ms), [&] { return stop_; })) {
    g.unlock();
    persist_all();
    (void)evict_once();
    g.lock();
  }
}

}  // namespace obd::cache
