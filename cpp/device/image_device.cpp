// The Image adapter behind BlockDevice. Each queue owns its request lists,
// its worker threads and their staging buffers; the only state queues share
// is the Image (which locks for itself) and the set of open queue ids.
#include "device/image_device.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "device/iov.h"
#include "io/nowait.h"

namespace obd {
namespace {

constexpr uint64_t kSector = 512;
// Queue ids name slots in a table; ublk allows far fewer queues.
constexpr unsigned kMaxQueues = 4096;

// What a device and its queues share; queues keep it alive.
struct DeviceCore {
  ImagePtr img;
  std::atomic<bool> closed{false};
  std::mutex mu;  // open queue ids (taken at open and close of a queue only)
  std::vector<bool> open_qids;
};

// A FIFO of requests linked through IoRequest::next_.
struct ReqList {
  IoRequest* head = nullptr;
  IoRequest* tail = nullptr;
  bool empty() const { return head == nullptr; }
  void push(IoRequest* r) {
    r->next_ = nullptr;
    (tail ? tail->next_ : head) = r;
    tail = r;
  }
  IoRequest* pop() {
    IoRequest* r = head;
    head = r->next_;
    if (!head) tail = nullptr;
    return r;
  }
  // Moves all of `o` to the end of this list.
  void append(ReqList& o) {
    if (o.empty()) return;
    (tail ? tail->next_ : head) = o.head;
    tail = o.tail;
    o.head = o.tail = nullptr;
  }
};

std::string range_text(const IoRequest& r) {
  return "at offset " + std::to_string(r.offset) + " length " + std::to_string(r.length);
}

Status check_range(const Image& img, const IoRequest& r, uint64_t size) {
  if (r.offset % kSector || r.length % kSector)
    return Status(Code::kUNALIGNED, img.name() + ": request " + range_text(r) + " is not 512-byte aligned");
  if (r.offset > size || r.length > size - r.offset)
    return Status(Code::kOUT_OF_RANGE, img.name() + ": request " + range_text(r) + " crosses the device end " +
                                           std::to_string(size));
  return Status::ok();
}

// Reads or writes one contiguous buffer.
Status transfer(Image& img, IoOp op, void* buf, uint64_t len, uint64_t off) {
  if (op == IoOp::kWrite) return img.pwrite(buf, len, off);
  OBD_ASSIGN_OR_RETURN(size_t got, img.pread(buf, len, off));
  if (got != len)
    return Status(Code::kOUT_OF_RANGE, img.name() + ": read of " + std::to_string(len) + " bytes at " +
                                           std::to_string(off) + " returned " + std::to_string(got));
  return Status::ok();
}

Status execute(DeviceCore& core, IoRequest& r, std::vector<uint8_t>& staging) {
  Image& img = *core.img;
  if (core.closed.load(std::memory_order_acquire)) return Status(Code::kCLOSED, img.name() + ": device closed");
  if (r.op == IoOp::kFlush) return img.sync();
  OBD_TRY(check_range(img, r, img.virtual_size()));
  switch (r.op) {
    case IoOp::kDiscard:
      return img.punch_hole(r.offset, r.length);
    case IoOp::kWriteZeroes:
      return img.write_zeroes(r.offset, r.length, r.may_unmap);
    case IoOp::kRead:
    case IoOp::kWrite:
      break;
    case IoOp::kFlush:
      return Status::ok();
  }
  uint64_t total = iov_total(r.iov, r.iovcnt);
  if (total != r.length)
    return Status(Code::kEINVAL, img.name() + ": request " + range_text(r) + " carries " + std::to_string(total) +
                                     " bytes of buffers");
  if (r.iovcnt == 1) return transfer(img, r.op, r.iov[0].iov_base, r.length, r.offset);
  // Several buffers: stage through the worker's buffer, one aligned run at a time.
  IovCursor cur(r.iov, r.iovcnt);
  for (uint64_t done = 0; done < r.length;) {
    uint64_t n = std::min<uint64_t>(staging.size(), r.length - done);
    if (r.op == IoOp::kWrite) cur.copy_out(staging.data(), n);
    OBD_TRY(transfer(img, r.op, staging.data(), n, r.offset + done));
    if (r.op == IoOp::kRead) cur.copy_in(staging.data(), n);
    done += n;
  }
  return Status::ok();
}

class ImageQueue final : public IoQueue {
 public:
  ImageQueue(std::shared_ptr<DeviceCore> core, unsigned qid, int efd, const QueueOptions& opts)
      : core_(std::move(core)), qid_(qid), staging_bytes_(std::max<uint64_t>(kSector, opts.max_io_bytes / kSector * kSector)),
        efd_(efd), inline_reads_(opts.inline_reads), signal_fd_(opts.signal_fd) {
    if (opts.workers == 0 || inline_reads_) inline_staging_.resize(staging_bytes_);
    for (unsigned i = 0; i < opts.workers; i++) workers_.emplace_back([this] { work(); });
  }

  ~ImageQueue() override {
    {
      std::lock_guard lk(mu_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();  // workers empty the submission list first
    closing_ = true;                    // completions that resubmit now get CLOSED
    while (in_flight_) reap(in_flight_);
    ::close(efd_);
    std::lock_guard lk(core_->mu);
    core_->open_qids[qid_] = false;
  }

  unsigned id() const override { return qid_; }
  int completion_fd() const override { return efd_; }
  size_t in_flight() const override { return in_flight_; }

  void submit(IoRequest& req) override {
    in_flight_++;
    if (closing_) {
      finish(req, Status(Code::kCLOSED, core_->img->name() + ": queue " + std::to_string(qid_) + " closed"));
      return;
    }
    if (workers_.empty()) {
      finish_inline(req, execute(*core_, req, inline_staging_));
      return;
    }
    if (inline_reads_ && req.op == IoOp::kRead) {
      NoWaitScope nowait;
      Status s = execute(*core_, req, inline_staging_);
      if (!nowait.refused()) {
        finish_inline(req, std::move(s));
        return;
      }
    }
    {
      std::lock_guard lk(mu_);
      pending_.push(&req);
    }
    work_cv_.notify_one();
  }

  size_t reap(size_t min) override {
    min = std::min(min, in_flight_);
    size_t ran = 0;
    reaping_++;
    do {
      ReqList done;
      std::swap(done, inline_done_);
      {
        std::unique_lock lk(mu_);
        if (ran < min && done.empty()) done_cv_.wait(lk, [this] { return !completed_.empty(); });
        if (signalled_.exchange(false)) {  // clear before taking the list
          uint64_t v;
          [[maybe_unused]] ssize_t rc = ::read(efd_, &v, sizeof v);
        }
        done.append(completed_);
      }
      while (!done.empty()) {
        IoRequest* r = done.pop();
        in_flight_--;
        ran++;
        Status s = std::move(r->status_);
        r->status_ = Status::ok();
        r->done(*r, s);  // may resubmit r
      }
    } while (ran < min);
    reaping_--;
    return ran;
  }

 private:
  void work() {
    std::vector<uint8_t> staging(staging_bytes_);
    std::unique_lock lk(mu_);
    while (true) {
      work_cv_.wait(lk, [this] { return stopping_ || !pending_.empty(); });
      if (pending_.empty()) return;
      IoRequest* r = pending_.pop();
      lk.unlock();
      Status s = execute(*core_, *r, staging);
      finish(*r, std::move(s));
      lk.lock();
    }
  }

  // A request done inside submit(): the submitting thread reaps after
  // submitting (every caller's loop does), so it needs neither the lock nor
  // the eventfd (a write, a read and, in a ublk ring, one more wake-up per
  // batch). One submitted by a completion inside reap() is signalled as
  // usual: that reap may return before seeing it.
  void finish_inline(IoRequest& r, Status s) {
    if (reaping_) return finish(r, std::move(s));
    r.status_ = std::move(s);
    inline_done_.push(&r);
  }

  void finish(IoRequest& r, Status s) {
    r.status_ = std::move(s);
    {
      std::lock_guard lk(mu_);
      completed_.push(&r);
    }
    done_cv_.notify_one();
    // One write per batch: the fd stays readable until reap() clears the flag.
    if (signal_fd_ && !signalled_.exchange(true)) {
      uint64_t one = 1;
      [[maybe_unused]] ssize_t rc = ::write(efd_, &one, sizeof one);
    }
  }

  std::shared_ptr<DeviceCore> core_;
  unsigned qid_;
  uint64_t staging_bytes_;
  int efd_;
  std::atomic<bool> signalled_{false};  // efd_ was written since reap() last cleared it
  bool inline_reads_;
  bool signal_fd_;
  bool closing_ = false;  // set by the destructor, on the queue's thread
  std::mutex mu_;  // this queue's lists only
  std::condition_variable work_cv_, done_cv_;
  ReqList pending_, completed_;
  bool stopping_ = false;
  size_t in_flight_ = 0;  // touched by the queue's thread only
  ReqList inline_done_;   // completed inside submit(); queue's thread only
  unsigned reaping_ = 0;  // reap() calls on the stack (a completion may reap)
  std::vector<uint8_t> inline_staging_;
  std::vector<std::thread> workers_;
};

class ImageDevice final : public BlockDevice {
 public:
  explicit ImageDevice(ImagePtr img) : core_(std::make_shared<DeviceCore>()) { core_->img = std::move(img); }
  ~ImageDevice() override { close(); }

  uint64_t size() const override { return core_->img->virtual_size(); }
  bool read_only() const override { return !core_->img->writable(); }
  bool io_type_supported(IoOp op) const override {
    return op == IoOp::kRead || op == IoOp::kFlush || core_->img->writable();
  }

  Result<std::unique_ptr<IoQueue>> open_queue(unsigned qid, const QueueOptions& opts) override {
    const std::string& name = core_->img->name();
    if (core_->closed.load()) return Status(Code::kCLOSED, name + ": device closed");
    if (qid >= kMaxQueues) return Status(Code::kEINVAL, name + ": queue id " + std::to_string(qid) + " out of range");
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) return Status::from_errno(errno, name + ": eventfd for queue " + std::to_string(qid));
    {
      std::lock_guard lk(core_->mu);
      if (qid >= core_->open_qids.size()) core_->open_qids.resize(qid + 1);
      if (core_->open_qids[qid]) {
        ::close(efd);
        return Status(Code::kEBUSY, name + ": queue " + std::to_string(qid) + " is open");
      }
      core_->open_qids[qid] = true;
    }
    return std::unique_ptr<IoQueue>(std::make_unique<ImageQueue>(core_, qid, efd, opts));
  }

  void close() override { core_->closed.store(true, std::memory_order_release); }

 private:
  std::shared_ptr<DeviceCore> core_;
};

}  // namespace

std::unique_ptr<BlockDevice> make_image_device(ImagePtr image) {
  return std::make_unique<ImageDevice>(std::move(image));
}

}  // namespace obd
