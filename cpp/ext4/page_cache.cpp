#include "ext4/page_cache.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace obd::ext4 {

namespace {
// Transfers at least this large and page-aligned bypass the cache.
constexpr size_t kDirectBytes = 64 * 1024;
// On a miss, read this many neighbouring pages too: inode tables and
// directories are walked block by block.
constexpr uint64_t kReadAhead = 8;
// Dirty pages written back per File call at most.
constexpr size_t kMaxRun = 256;
}  // namespace

PageCache::PageCache(FilePtr file, size_t capacity_pages, bool skip_unchanged)
    : file_(std::move(file)), capacity_(std::max<size_t>(capacity_pages, 64)), skip_unchanged_(skip_unchanged) {}

PageCache::Page* PageCache::find(uint64_t idx) {
  auto it = map_.find(idx);
  if (it == map_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return &*it->second;
}

PageCache::Page* PageCache::insert(uint64_t idx) {
  lru_.push_front(Page{idx, false, false, std::make_unique<uint8_t[]>(kPage)});
  map_[idx] = lru_.begin();
  return &lru_.front();
}

Status PageCache::read_file(void* buf, size_t len, uint64_t off) {
  if (dev_size_ == UINT64_MAX) {
    OBD_ASSIGN_OR_RETURN(dev_size_, file_->size());
  }
  // Read-ahead may reach past the device end; an Image refuses that.
  size_t want = off >= dev_size_ ? 0 : size_t(std::min<uint64_t>(len, dev_size_ - off));
  size_t got = 0;
  if (want > 0) {
    OBD_ASSIGN_OR_RETURN(got, file_->pread(buf, want, off));
  }
  if (got < len) std::memset(static_cast<uint8_t*>(buf) + got, 0, len - got);
  bytes_read += got;
  return Status::ok();
}

Status PageCache::write_file(const void* buf, size_t len, uint64_t off) {
  OBD_TRY(file_->pwrite(buf, len, off));
  bytes_written += len;
  return Status::ok();
}

Result<PageCache::Page*> PageCache::load(uint64_t idx) {
  if (Page* p = find(idx)) {
    ++hits;
    return p;
  }
  ++misses;
  uint64_t first = idx - idx % kReadAhead;
  std::vector<uint8_t> buf(kReadAhead * kPage);
  OBD_TRY(read_file(buf.data(), buf.size(), first * kPage));
  Page* want = nullptr;
  for (uint64_t i = 0; i < kReadAhead; ++i) {
    uint64_t k = first + i;
    if (k != idx && map_.count(k)) continue;  // keep what we hold (maybe dirty)
    Page* p = insert(k);
    std::memcpy(p->data.get(), buf.data() + i * kPage, kPage);
    if (k == idx) want = p;
  }
  // The wanted page was inserted last among its neighbours only if it came
  // last; move it to the front so eviction does not pick it first.
  return find(want->idx);
}

void PageCache::drop_range(uint64_t first, uint64_t last) {
  if (map_.empty()) return;
  if (last - first + 1 > map_.size()) {
    for (auto it = lru_.begin(); it != lru_.end();) {
      if (it->idx >= first && it->idx <= last) {
        if (it->dirty) --dirty_count_;
        map_.erase(it->idx);
        it = lru_.erase(it);
      } else {
        ++it;
      }
    }
    return;
  }
  for (uint64_t k = first; k <= last; ++k) {
    auto it = map_.find(k);
    if (it == map_.end()) continue;
    if (it->second->dirty) --dirty_count_;
    lru_.erase(it->second);
    map_.erase(it);
  }
}

Status PageCache::read(uint64_t off, size_t len, void* out) {
  auto* dst = static_cast<uint8_t*>(out);
  if (len == 0) return Status::ok();
  uint64_t first = off / kPage, last = (off + len - 1) / kPage;
  if (len >= kDirectBytes) {
    // One File read, then overlay the pages we hold dirty.
    OBD_TRY(read_file(dst, len, off));
    if (dirty_count_ == 0) return Status::ok();
    for (uint64_t k = first; k <= last; ++k) {
      auto it = map_.find(k);
      if (it == map_.end() || !it->second->dirty) continue;
      uint64_t pstart = k * kPage;
      uint64_t a = std::max(pstart, off), b = std::min(pstart + kPage, off + len);
      std::memcpy(dst + (a - off), it->second->data.get() + (a - pstart), b - a);
    }
    return Status::ok();
  }
  for (uint64_t k = first; k <= last; ++k) {
    OBD_ASSIGN_OR_RETURN(Page * p, load(k));
    uint64_t pstart = k * kPage;
    uint64_t a = std::max(pstart, off), b = std::min(pstart + kPage, off + len);
    std::memcpy(dst + (a - off), p->data.get() + (a - pstart), b - a);
  }
  return maybe_evict();
}

Status PageCache::write(uint64_t off, size_t len, const void* in) {
  return write_pages(off, len, static_cast<const uint8_t*>(in), false);
}

Status PageCache::write_fresh(uint64_t off, size_t len, const void* in) {
  return write_pages(off, len, static_cast<const uint8_t*>(in), true);
}

Status PageCache::write_pages(uint64_t off, size_t len, const uint8_t* src, bool fresh) {
  if (len == 0) return Status::ok();
  uint64_t first = off / kPage, last = (off + len - 1) / kPage;
  if (len >= kDirectBytes && off % kPage == 0 && len % kPage == 0) {
    drop_range(first, last);  // fully overwritten: cached copies are stale
    return write_file(src, len, off);
  }
  for (uint64_t k = first; k <= last; ++k) {
    uint64_t pstart = k * kPage;
    uint64_t a = std::max(pstart, off), b = std::min(pstart + kPage, off + len);
    Page* p;
    if (b - a == kPage) {
      p = find(k);
      if (!p) p = insert(k);
    } else {
      OBD_ASSIGN_OR_RETURN(p, load(k));
    }
    std::memcpy(p->data.get() + (a - pstart), src + (a - off), b - a);
    if (!p->dirty) {
      p->dirty = true;
      p->fresh = fresh;
      ++dirty_count_;
    } else {
      p->fresh = p->fresh && fresh;
    }
  }
  return maybe_evict();
}

Status PageCache::discard(uint64_t off, uint64_t len) {
  if (len == 0) return Status::ok();
  uint64_t a = (off + kPage - 1) / kPage * kPage;  // aligned interior
  uint64_t b = (off + len) / kPage * kPage;
  if (a < b) {
    drop_range(a / kPage, b / kPage - 1);
    OBD_TRY(file_->punch_hole(a, b - a));
  }
  // Unaligned edges: write zeros through the cache.
  static const uint8_t zeros[kPage] = {};
  if (off < std::min(a, off + len)) OBD_TRY(write(off, std::min(a, off + len) - off, zeros));
  if (b >= a && b < off + len) OBD_TRY(write(b, off + len - b, zeros));
  return Status::ok();
}

Status PageCache::write_run(const std::vector<Page*>& run) {
  size_t n = run.size();
  std::vector<uint8_t> buf(n * kPage);
  std::vector<bool> changed(n, true);
  uint64_t base = run[0]->idx * kPage;
  bool all_fresh = true;
  for (Page* p : run) all_fresh = all_fresh && p->fresh;
  if (skip_unchanged_ && !all_fresh) {
    OBD_TRY(read_file(buf.data(), buf.size(), base));
    for (size_t i = 0; i < n; ++i) {
      if (run[i]->fresh) continue;
      changed[i] = std::memcmp(buf.data() + i * kPage, run[i]->data.get(), kPage) != 0;
      if (!changed[i]) ++skipped;
    }
  }
  for (size_t i = 0; i < n; ++i) std::memcpy(buf.data() + i * kPage, run[i]->data.get(), kPage);
  // Write each stretch of changed pages with one call.
  for (size_t i = 0; i < n;) {
    if (!changed[i]) {
      ++i;
      continue;
    }
    size_t j = i;
    while (j < n && changed[j]) ++j;
    OBD_TRY(write_file(buf.data() + i * kPage, (j - i) * kPage, base + i * kPage));
    i = j;
  }
  for (Page* p : run) p->dirty = p->fresh = false;
  dirty_count_ -= n;
  return Status::ok();
}

Status PageCache::flush() {
  if (dirty_count_ == 0) return Status::ok();
  std::vector<Page*> dirty;
  dirty.reserve(dirty_count_);
  for (auto& p : lru_)
    if (p.dirty) dirty.push_back(&p);
  // Ascending order: the upper layer gets few, long writes.
  std::sort(dirty.begin(), dirty.end(), [](Page* a, Page* b) { return a->idx < b->idx; });
  std::vector<Page*> run;
  for (Page* p : dirty) {
    if (!run.empty() && (p->idx != run.back()->idx + 1 || run.size() >= kMaxRun)) {
      OBD_TRY(write_run(run));
      run.clear();
    }
    run.push_back(p);
  }
  if (!run.empty()) OBD_TRY(write_run(run));
  return Status::ok();
}

Status PageCache::maybe_evict() {
  if (map_.size() <= capacity_) return Status::ok();
  OBD_TRY(flush());
  size_t target = capacity_ * 3 / 4;
  while (map_.size() > target) {
    map_.erase(lru_.back().idx);
    lru_.pop_back();
  }
  return Status::ok();
}

}  // namespace obd::ext4
