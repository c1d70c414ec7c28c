#include "cache/entry.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>

namespace obd::cache {
namespace {

// Largest run of missing units one fetch asks the source for.
constexpr uint64_t kMaxFetchBytes = 8 << 20;
// Rounds a read re-plans after the units it copied moved under it, before
// it reads from the source directly.
constexpr int kMaxReplans = 3;

int64_t now_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t(ts.tv_sec) * 1000000000 + ts.tv_nsec;
}

uint64_t since_us(std::chrono::steady_clock::time_point t0) {
  return uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count());
}

// Bytes read; fewer than `len` only at end of file. -errno on failure.
int64_t pread_full(int fd, void* buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t n = ::pread(fd, static_cast<uint8_t*>(buf) + got, len - got, off_t(off + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    if (n == 0) break;
    got += size_t(n);
  }
  return int64_t(got);
}

int pwrite_full(int fd, const void* buf, size_t len, uint64_t off) {
  for (size_t done = 0; done < len;) {
    ssize_t n = ::pwrite(fd, static_cast<const uint8_t*>(buf) + done, len - done, off_t(off + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    done += size_t(n);
  }
  return 0;
}

uint64_t allocated(int fd) {
  struct stat st;
  return ::fstat(fd, &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0;
}

}  // namespace

void Flight::finish(Status s) {
  std::lock_guard<std::mutex> g(m);
  status = std::move(s);
  done = true;
  cv.notify_all();
}

const Status& Flight::wait() {
  std::unique_lock<std::mutex> g(m);
  cv.wait(g, [&] { return done; });
  return status;
}

Entry::Entry(Context& ctx, std::string key, uint64_t size)
    : ctx_(ctx),
      key_(std::move(key)),
      path_(ctx.opts.dir + "/" + key_),
      map_path_(path_ + ".map"),
      size_(size),
      unit_(ctx.opts.refill_size),
      map_(size / unit_ + (size % unit_ != 0)) {
  last_access_ns_ = now_ns();
}

std::shared_ptr<Entry> Entry::open(Context& ctx, const std::string& key, uint64_t size) {
  auto e = std::make_shared<Entry>(ctx, key, size);
  auto fail = [&] {
    if (e->fd_ >= 0) ::close(e->fd_);
    e->fd_ = -1;
    ctx.emit(CacheEventKind::kWriteFailed, key, 0, 0, 0);
    return e;
  };
  bool fresh = false;
  e->fd_ = ::open(e->path_.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (e->fd_ < 0 && errno == ENOENT) {
    e->fd_ = ::open(e->path_.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    fresh = true;
  }
  if (e->fd_ < 0) return fail();
  struct stat st;
  if (::fstat(e->fd_, &st) != 0 || !S_ISREG(st.st_mode)) return fail();

  std::optional<UnitMap> saved;
  if (!fresh) saved = UnitMap::load(e->map_path_, size, e->unit_);
  if (!saved) {
    // Bytes without a trustworthy map are unknown: drop them.
    ::unlink(e->map_path_.c_str());
    if (::ftruncate(e->fd_, 0) != 0 || ::ftruncate(e->fd_, off_t(size)) != 0) return fail();
    return e;
  }
  e->map_ = std::move(*saved);
  e->last_access_ns_ = int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (uint64_t(st.st_size) != size) {
    // Cut by someone else: units past the cut are gone. The map must say so
    // on disk before the file grows back with zeros where they were.
    bool dropped = false;
    for (uint64_t u = 0; u < e->map_.units(); u++) {
      if (e->map_.test(u) && e->unit_end(u) > uint64_t(st.st_size)) {
        e->map_.clear(u);
        dropped = true;
      }
    }
    if (dropped && !e->map_.save(e->map_path_, size, e->unit_)) ::unlink(e->map_path_.c_str());
    if (::ftruncate(e->fd_, off_t(size)) != 0) return fail();
  }
  return e;
}

Entry::~Entry() {
  if (fd_ < 0) return;
  (void)persist();
  ::close(fd_);
}

Status Entry::read(File& source, std::span<ReadReq> reqs) {
  for (auto& r : reqs) r.done = r.off >= size_ ? 0 : size_t(std::min<uint64_t>(r.len, size_ - r.off));
  last_access_ns_.store(now_ns(), std::memory_order_relaxed);
  for (int round = 0; round < kMaxReplans; round++) {
    bool again = false;
    OBD_TRY(try_read(source, reqs, again));
    if (!again) return Status::ok();
  }
  return pass_through(source, reqs);
}

// How one unit of a read is served: from the cache file or from a flight.
struct Entry::Use {
  uint64_t unit;
  Flight* flight;  // null: present in the cache file
};

Status Entry::try_read(File& source, std::span<ReadReq> reqs, bool& again) {
  // The units the requests touch, in order, each once.
  std::vector<Use> plan;
  for (const auto& r : reqs) {
    if (r.done == 0) continue;
    for (uint64_t u = r.off / unit_, last = (r.off + r.done - 1) / unit_; u <= last; u++) plan.push_back({u, nullptr});
  }
  std::sort(plan.begin(), plan.end(), [](const Use& a, const Use& b) { return a.unit < b.unit; });
  plan.erase(std::unique(plan.begin(), plan.end(), [](const Use& a, const Use& b) { return a.unit == b.unit; }),
             plan.end());

  // Present units are read locally; missing ones join a fetch in flight or
  // start one (adjacent missing units share one).
  std::vector<std::shared_ptr<Flight>> own, others;
  const uint64_t max_units = std::max<uint64_t>(1, kMaxFetchBytes / unit_);
  uint64_t gen;
  {
    std::lock_guard<std::mutex> g(mu_);
    gen = gen_;
    for (Use& use : plan) {
      if (fd_ >= 0 && map_.test(use.unit)) continue;
      if (auto it = flights_.find(use.unit); it != flights_.end()) {
        use.flight = it->second.get();
        if (others.empty() || others.back() != it->second) others.push_back(it->second);
        continue;
      }
      Flight* last = own.empty() ? nullptr : own.back().get();
      if (!last || last->first + last->count != use.unit || last->count == max_units) {
        own.push_back(std::make_shared<Flight>());
        own.back()->first = use.unit;
        own.back()->off = use.unit * unit_;
      }
      own.back()->count++;
      use.flight = own.back().get();
      flights_[use.unit] = own.back();
    }
  }
  if (!own.empty()) fetch(source, own, gen);

  // Copy each request's bytes: runs of present units with one pread straight
  // into the caller's buffer, fetched units from their flight.
  bool read_local = false, short_local = false;
  for (auto& r : reqs) {
    if (r.done == 0) continue;
    auto* out = static_cast<uint8_t*>(r.buf);
    const uint64_t first = r.off / unit_, end = r.off + r.done;
    const size_t base = std::lower_bound(plan.begin(), plan.end(), first,
                                         [](const Use& a, uint64_t u) { return a.unit < u; }) -
                        plan.begin();
    for (uint64_t pos = r.off; pos < end;) {
      uint64_t u = pos / unit_;
      Flight* f = plan[base + (u - first)].flight;
      if (f) {
        OBD_TRY(f->wait());
        uint64_t to = std::min(end, f->off + f->data.size());
        std::memcpy(out + (pos - r.off), f->data.data() + (pos - f->off), to - pos);
        pos = to;
        continue;
      }
      uint64_t v = u;
      while ((v + 1) * unit_ < end && !plan[base + (v + 1 - first)].flight) v++;
      uint64_t to = std::min(end, (v + 1) * unit_);
      auto t0 = std::chrono::steady_clock::now();
      int64_t n = pread_full(fd_, out + (pos - r.off), to - pos, pos);
      if (n < 0) return Status::from_errno(int(-n), "read cache file " + path_ + " at offset " + std::to_string(pos));
      read_local = true;
      if (uint64_t(n) < to - pos) {
        short_local = true;
        break;
      }
      ctx_.hits += v - u + 1;
      ctx_.emit(CacheEventKind::kHit, key_, pos, to - pos, since_us(t0));
      pos = to;
    }
  }
  if (short_local) {
    drop_past_end();
    again = true;
    return Status::ok();
  }
  if (read_local) {
    std::lock_guard<std::mutex> g(mu_);
    again = gen_ != gen;
  }
  return Status::ok();
}

void Entry::fetch(File& source, std::span<const std::shared_ptr<Flight>> own, uint64_t gen) {
  std::vector<ReadReq> reqs;
  uint64_t total = 0;
  for (const auto& f : own) {
    f->data.resize(std::min<uint64_t>(f->count * unit_, size_ - f->off));
    reqs.push_back({f->data.data(), f->data.size(), f->off});
    total += f->data.size();
  }
  auto t0 = std::chrono::steady_clock::now();
  Status batch = source.pread_batch(reqs);
  uint64_t latency = since_us(t0);
  std::vector<Status> results(own.size());
  for (size_t i = 0; i < own.size(); i++) {
    const auto& f = own[i];
    if (!batch) {
      results[i] = batch.with_context(key_);
    } else if (reqs[i].done != f->data.size()) {
      results[i] = Status(Code::kEIO, key_ + ": source " + source.name() + " ended after " +
                                          std::to_string(f->off + reqs[i].done) + " bytes; its size was " +
                                          std::to_string(size_));
    }
  }
  if (batch) {
    ctx_.fetched += total;
    for (const auto& f : own) {
      ctx_.misses += f->count;
      ctx_.emit(CacheEventKind::kMiss, key_, f->off, f->data.size(), latency);
    }
  }

  // Store what arrived. A failed write leaves its units missing; the bytes
  // are served from memory all the same.
  std::vector<bool> stored(own.size(), false);
  if (fd_ >= 0 && batch) {
    ctx_.reserve(total);
    for (size_t i = 0; i < own.size(); i++) {
      if (!results[i]) continue;
      const auto& f = own[i];
      if (pwrite_full(fd_, f->data.data(), f->data.size(), f->off) != 0) {
        ctx_.emit(CacheEventKind::kWriteFailed, key_, f->off, f->data.size(), 0);
        continue;
      }
      stored[i] = true;
      ctx_.used += f->data.size();
    }
  }
  {
    std::lock_guard<std::mutex> g(mu_);
    for (size_t i = 0; i < own.size(); i++) {
      const auto& f = own[i];
      // An eviction since the plan may have cut these bytes out again.
      if (stored[i] && gen_ == gen) {
        for (uint64_t u = f->first; u < f->first + f->count; u++) map_.set(u);
        dirty_ = true;
      }
      for (uint64_t u = f->first; u < f->first + f->count; u++) flights_.erase(u);
    }
  }
  for (size_t i = 0; i < own.size(); i++) own[i]->finish(results[i]);
}

Status Entry::pass_through(File& source, std::span<ReadReq> reqs) {
  std::vector<ReadReq> clipped(reqs.begin(), reqs.end());
  for (auto& r : clipped) r.len = r.done;
  Status s = source.pread_batch(clipped);
  if (!s) return s.with_context(key_);
  for (size_t i = 0; i < reqs.size(); i++) {
    if (clipped[i].done != reqs[i].done)
      return Status(Code::kEIO, key_ + ": source " + source.name() + " ended after " +
                                    std::to_string(reqs[i].off + clipped[i].done) + " bytes; its size was " +
                                    std::to_string(size_));
    ctx_.fetched += clipped[i].done;
  }
  return Status::ok();
}

// The cache file is shorter than it should be (cut by another process): the
// units past its end are forgotten, on disk before the file grows back.
void Entry::drop_past_end() {
  {
    std::lock_guard<std::mutex> g(mu_);
    struct stat st;
    uint64_t end = ::fstat(fd_, &st) == 0 ? uint64_t(st.st_size) : 0;
    for (uint64_t u = end / unit_; u < map_.units(); u++) {
      if (map_.test(u) && unit_end(u) > end) {
        map_.clear(u);
        gen_++;
        dirty_ = true;
      }
    }
  }
  (void)persist();
  std::lock_guard<std::mutex> g(mu_);
  // Back to full size, so the units fetched again leave no short file.
  struct stat st;
  if (::fstat(fd_, &st) == 0 && uint64_t(st.st_size) < size_) (void)!::ftruncate(fd_, off_t(size_));
}

Status Entry::invalidate(uint64_t off, uint64_t len) {
  if (off >= size_ || len == 0) return Status::ok();
  len = std::min(len, size_ - off);
  {
    std::lock_guard<std::mutex> g(mu_);
    for (uint64_t u = off / unit_, last = (off + len - 1) / unit_; u <= last; u++) map_.clear(u);
    gen_++;
    dirty_ = true;
  }
  ctx_.emit(CacheEventKind::kInvalidate, key_, off, len, 0);
  // The units are about to be written again: the map on disk must stop
  // marking them first. A failed save is reported (kWriteFailed) by persist.
  if (fd_ >= 0) (void)persist();
  return Status::ok();
}

uint64_t Entry::empty() {
  if (fd_ < 0) return 0;
  std::lock_guard<std::mutex> p(persist_mu_);
  std::lock_guard<std::mutex> g(mu_);
  struct stat st;
  uint64_t before = allocated(fd_) + (::stat(map_path_.c_str(), &st) == 0 ? uint64_t(st.st_blocks) * 512 : 0);
  // The map goes first: an empty file must never sit under a map that
  // marks units present.
  map_.clear_all();
  gen_++;
  dirty_ = false;
  ::unlink(map_path_.c_str());
  // A file that will not shrink keeps its bytes, but with the map empty
  // reads fetch them again all the same.
  if (::ftruncate(fd_, 0) == 0) (void)!::ftruncate(fd_, off_t(size_));
  uint64_t after = allocated(fd_);
  return before > after ? before - after : 0;
}

Status Entry::persist() {
  if (fd_ < 0) return Status::ok();
  std::lock_guard<std::mutex> p(persist_mu_);
  UnitMap snapshot(0);
  bool dirty;
  {
    std::lock_guard<std::mutex> g(mu_);
    dirty = dirty_;
    if (dirty) snapshot = map_;
    dirty_ = false;
  }
  Status s;
  if (dirty) {
    // Units are marked only after their bytes were written; syncing now
    // makes every unit of this snapshot durable before the map says so.
    if (::fdatasync(fd_) != 0) s = Status::from_errno(errno, "fdatasync " + path_);
    if (s) s = snapshot.save(map_path_, size_, unit_);
    if (!s) {
      std::lock_guard<std::mutex> g(mu_);
      dirty_ = true;
      ctx_.emit(CacheEventKind::kWriteFailed, key_, 0, 0, 0);
    }
  }
  int64_t t = last_access_ns();
  timespec times[2] = {{t / 1000000000, t % 1000000000}, {t / 1000000000, t % 1000000000}};
  (void)::futimens(fd_, times);
  return s;
}

}  // namespace obd::cache
