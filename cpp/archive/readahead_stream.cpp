// Read-ahead: a producer thread fills chunks from the inner stream, the
// reader takes them in order.
#include "archive/readahead_stream.h"

#include <atomic>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace obd {

namespace {

// What the producer and the reader share. The producer holds it too, so a
// reader that goes away while the producer waits on its source (a pipe whose
// writer is slow) can leave without waiting: the producer ends at its next
// read and frees the inner stream itself.
struct Shared {
  ByteStreamPtr inner;
  std::string name;
  size_t chunk = 0;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::vector<uint8_t>> full;  // filled chunks, in order
  std::vector<std::vector<uint8_t>> empty;
  bool ended = false;     // the inner stream ended (after `full`)
  Status error;           // or failed (after `full`)
  bool stop = false;      // the reader is gone
  bool finished = false;  // the producer returned
  std::atomic<uint64_t> consumed{0};
};

void produce(const std::shared_ptr<Shared>& sh) {
  for (;;) {
    std::vector<uint8_t> buf;
    {
      std::unique_lock lk(sh->mu);
      sh->cv.wait(lk, [&] { return sh->stop || !sh->empty.empty(); });
      if (sh->stop) break;
      buf = std::move(sh->empty.back());
      sh->empty.pop_back();
    }
    buf.resize(sh->chunk);
    size_t got = 0;
    Status failed;
    bool end = false;
    while (got < buf.size()) {
      Result<size_t> r = sh->inner->read(buf.data() + got, buf.size() - got);
      if (!r) {
        failed = r.status();
        break;
      }
      if (*r == 0) {
        end = true;
        break;
      }
      got += *r;
    }
    sh->consumed.store(sh->inner->consumed(), std::memory_order_relaxed);
    buf.resize(got);
    std::lock_guard lk(sh->mu);
    if (got > 0) sh->full.push_back(std::move(buf));
    if (!failed.is_ok()) sh->error = failed;
    if (end) sh->ended = true;
    sh->cv.notify_all();
    if (!failed.is_ok() || end) break;
  }
  sh->inner.reset();  // closes the source (a pipe's read end) as soon as it is done with
  std::lock_guard lk(sh->mu);
  sh->finished = true;
  sh->cv.notify_all();
}

class ReadaheadStream final : public ByteStream {
 public:
  ReadaheadStream(ByteStreamPtr inner, size_t chunk, size_t chunks) : sh_(std::make_shared<Shared>()) {
    sh_->name = inner->name();
    sh_->inner = std::move(inner);
    sh_->chunk = chunk;
    sh_->empty.resize(chunks);
    producer_ = std::thread([sh = sh_] { produce(sh); });
  }

  ~ReadaheadStream() override {
    bool past_reads;
    {
      std::lock_guard lk(sh_->mu);
      sh_->stop = true;
      past_reads = sh_->finished || sh_->ended || !sh_->error.is_ok();
      sh_->cv.notify_all();
    }
    // A producer still reading its source ends on its own (see Shared).
    if (past_reads) producer_.join();
    else producer_.detach();
  }

  Result<size_t> read(void* buf, size_t n) override {
    if (n == 0) return size_t(0);
    if (pos_ == cur_.size()) {
      std::unique_lock lk(sh_->mu);
      if (cur_.capacity() > 0) {  // a chunk taken before: back to the pool
        sh_->empty.push_back(std::move(cur_));
        sh_->cv.notify_all();
      }
      cur_ = {};
      pos_ = 0;
      sh_->cv.wait(lk, [&] { return !sh_->full.empty() || sh_->ended || !sh_->error.is_ok(); });
      if (sh_->full.empty()) {
        if (!sh_->error.is_ok()) return sh_->error;
        return size_t(0);
      }
      cur_ = std::move(sh_->full.front());
      sh_->full.pop_front();
    }
    size_t k = std::min(n, cur_.size() - pos_);
    std::memcpy(buf, cur_.data() + pos_, k);
    pos_ += k;
    return k;
  }

  uint64_t consumed() const override { return sh_->consumed.load(std::memory_order_relaxed); }
  const std::string& name() const override { return sh_->name; }

 private:
  std::shared_ptr<Shared> sh_;
  std::thread producer_;
  std::vector<uint8_t> cur_;  // the chunk being read
  size_t pos_ = 0;
};

}  // namespace

ByteStreamPtr make_readahead_stream(ByteStreamPtr inner, size_t chunk, size_t chunks) {
  return std::make_unique<ReadaheadStream>(std::move(inner), std::max<size_t>(chunk, 1), std::max<size_t>(chunks, 1));
}

}  // namespace obd
