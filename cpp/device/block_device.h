// The block-device contract every frontend (FUSE file + loop, TCMU, ublk)
// adapts to, modelled on SPDK's bdev modules: a small device interface (what
// it supports, open a queue, close) and requests the caller owns, completed
// through a plain function pointer, so the I/O path allocates nothing.
//
// Queues follow ublk: one thread per queue submits requests and runs their
// completions (IoQueue::reap), and a queue shares no lock with other queues;
// only the device's backing store (the Image) synchronises between them.
#pragma once
#include <sys/uio.h>

#include <cstdint>
#include <memory>

#include "common/status.h"

namespace obd {

enum class IoOp : uint8_t {
  kRead,
  kWrite,
  kFlush,
  kDiscard,       // deallocate; contents afterwards are unspecified by the block layer
  kWriteZeroes,   // the range reads as zeros afterwards
};

struct IoRequest;

// Runs exactly once per submitted request, on the queue's thread (inside
// IoQueue::reap or the queue's destructor). Must not block for long.
using IoCompletion = void (*)(IoRequest& req, const Status& status);

// One request, owned by the caller (say, one per ublk tag), who keeps it and
// its buffers alive until the completion has run, and may reuse it from
// inside the completion.
struct IoRequest {
  IoOp op = IoOp::kRead;
  bool may_unmap = false;      // kWriteZeroes: may deallocate where that still reads as zeros
  uint64_t offset = 0;         // bytes, a multiple of the block size
  uint64_t length = 0;         // bytes (0 for flush)
  const iovec* iov = nullptr;  // kRead/kWrite buffers holding `length` bytes in all
  uint32_t iovcnt = 0;
  IoCompletion done = nullptr;
  void* ctx = nullptr;         // the caller's own

  // Owned by the queue while the request is in flight (intrusive lists).
  IoRequest* next_ = nullptr;
  Status status_{};
};

// Per-queue execution settings.
struct QueueOptions {
  // Threads executing the queue's requests; 0 executes each inside submit()
  // (completion still waits for reap()).
  unsigned workers = 1;
  // With workers: a read first runs inside submit() without waiting on
  // storage (io/nowait.h: page cache, memory); only one that would wait goes
  // to a worker. Saves two thread hand-offs per cached read.
  bool inline_reads = true;
  // Make completion_fd() readable while completions wait. A caller that
  // reaps right after each submit, with no poll loop (a FUSE thread), turns
  // it off and saves an eventfd write and read per request.
  bool signal_fd = true;
  // Staging buffer per worker for requests with several buffers.
  uint32_t max_io_bytes = 1u << 20;
};

// One queue (a ublk queue, a TCMU ring). Used by one thread at a time.
class IoQueue {
 public:
  // Finishes the requests in flight and runs their completions.
  virtual ~IoQueue() = default;
  virtual unsigned id() const = 0;
  // Starts `req`; errors (bad range, closed device) arrive as its completion.
  // A request may finish inside submit() (workers = 0, a cached read): its
  // completion then waits for the next reap() without making completion_fd()
  // readable, so the submitting thread reaps before it polls.
  virtual void submit(IoRequest& req) = 0;
  // Runs completions of finished requests on the calling thread, first
  // waiting until at least min(`min`, in_flight()) are done. Returns the count.
  virtual size_t reap(size_t min = 0) = 0;
  // An eventfd that is readable while completions of requests that finished
  // outside submit() wait for reap(), for the queue thread's poll loop
  // (io_uring POLL_ADD in a ublk server); never readable when
  // QueueOptions::signal_fd is off.
  virtual int completion_fd() const = 0;
  // Submitted requests whose completion has not run yet.
  virtual size_t in_flight() const = 0;
};

class BlockDevice {
 public:
  virtual ~BlockDevice() = default;
  virtual uint64_t size() const = 0;
  virtual uint32_t block_size() const { return 512; }
  virtual bool read_only() const = 0;
  virtual bool io_type_supported(IoOp op) const = 0;
  // Opens queue `qid`; fails with EBUSY while a queue with that id is open.
  // A queue may outlive its device.
  virtual Result<std::unique_ptr<IoQueue>> open_queue(unsigned qid, const QueueOptions& opts = {}) = 0;
  // Stops the device: later open_queue calls fail and requests not yet
  // started complete with CLOSED. Requests already running finish. Idempotent.
  virtual void close() = 0;
};

}  // namespace obd
