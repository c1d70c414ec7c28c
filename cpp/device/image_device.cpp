#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "device/block_device.h"

namespace obd {
namespace {

class ImageDevice final : public BlockDevice {
 public:
  ImageDevice(ImagePtr img, unsigned threads) : img_(std::move(img)) {
    for (unsigned i = 0; i < std::max(1u, threads); i++) workers_.emplace_back([this] { loop(); });
  }
  ~ImageDevice() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  uint64_t size() const override { return img_->virtual_size(); }
  bool read_only() const override { return !img_->writable(); }
  bool supports(IoOp op) const override { return op == IoOp::kRead || op == IoOp::kFlush || img_->writable(); }

  void submit(const IoRequest& req, IoCompletion done) override {
    {
      std::lock_guard lk(mu_);
      queue_.push_back({req, std::move(done)});
      pending_++;
    }
    cv_.notify_one();
  }

  void drain() override {
    std::unique_lock lk(mu_);
    idle_.wait(lk, [this] { return pending_ == 0; });
  }

 private:
  struct Job {
    IoRequest req;
    IoCompletion done;
  };

  void loop() {
    while (true) {
      Job job;
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      Status s = execute(job.req);
      job.done(s);
      std::lock_guard lk(mu_);
      if (--pending_ == 0) idle_.notify_all();
    }
  }

  Status execute(const IoRequest& r) {
    switch (r.op) {
      case IoOp::kFlush:
        return img_->sync();
      case IoOp::kDiscard:
        return img_->punch_hole(r.offset, r.length);
      case IoOp::kRead:
      case IoOp::kWrite:
        break;
    }
    uint64_t total = 0;
    for (const iovec& v : r.iov) total += v.iov_len;
    if (total != r.length)
      return Status(Code::kEINVAL, "request of " + std::to_string(r.length) + " bytes carries " +
                                       std::to_string(total) + " bytes of buffers");
    if (r.iov.size() == 1) return one(r.op, r.iov[0].iov_base, r.length, r.offset);
    // Several buffers: stage through one contiguous buffer (aligned I/O below).
    std::vector<uint8_t> bounce(r.length);
    if (r.op == IoOp::kWrite) {
      uint64_t at = 0;
      for (const iovec& v : r.iov) {
        std::memcpy(bounce.data() + at, v.iov_base, v.iov_len);
        at += v.iov_len;
      }
    }
    OBD_TRY(one(r.op, bounce.data(), r.length, r.offset));
    if (r.op == IoOp::kRead) {
      uint64_t at = 0;
      for (const iovec& v : r.iov) {
        std::memcpy(v.iov_base, bounce.data() + at, v.iov_len);
        at += v.iov_len;
      }
    }
    return Status::ok();
  }

  Status one(IoOp op, void* buf, uint64_t len, uint64_t off) {
    if (op == IoOp::kWrite) return img_->pwrite(buf, len, off);
    OBD_ASSIGN_OR_RETURN(size_t got, img_->pread(buf, len, off));
    if (got != len)
      return Status(Code::kOUT_OF_RANGE, img_->name() + ": read of " + std::to_string(len) + " bytes at " +
                                             std::to_string(off) + " crosses the device end");
    return Status::ok();
  }

  ImagePtr img_;
  std::mutex mu_;
  std::condition_variable cv_, idle_;
  std::deque<Job> queue_;
  size_t pending_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;
};

}  // namespace

std::unique_ptr<BlockDevice> make_image_device(ImagePtr image, unsigned threads) {
  return std::make_unique<ImageDevice>(std::move(image), threads);
}

}  // namespace obd
