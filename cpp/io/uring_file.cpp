// io_uring read engine: one ring per thread (rings are not thread-safe and a
// per-thread ring needs no locks). Batches go to the kernel in one submit.
#include <liburing.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "io/local_file.h"
#include "io/nowait.h"

namespace obd {
namespace {

constexpr unsigned kRingDepth = 64;

struct Ring {
  io_uring ring{};
  bool ok = false;
  bool broken = false;  // a failed submit left entries queued: never use again
  Ring() { ok = io_uring_queue_init(kRingDepth, &ring, 0) == 0; }
  ~Ring() {
    if (ok) io_uring_queue_exit(&ring);
  }
};

Ring* thread_ring() {
  thread_local std::unique_ptr<Ring> r = std::make_unique<Ring>();
  return r->ok && !r->broken ? r.get() : nullptr;
}

}  // namespace

bool io_uring_available() {
  static const bool avail = [] {
    io_uring ring;
    if (io_uring_queue_init(2, &ring, 0) != 0) return false;
    io_uring_queue_exit(&ring);
    return true;
  }();
  return avail;
}

Result<size_t> UringFile::pread(void* buf, size_t len, uint64_t off) {
  ReadReq r{buf, len, off};
  OBD_TRY(pread_batch(std::span<ReadReq>(&r, 1)));
  return r.done;
}

Status UringFile::pread_batch(std::span<ReadReq> reqs) {
  if (nowait_active()) {  // preadv2(RWF_NOWAIT) each: a ring read would wait
    for (ReadReq& r : reqs) {
      OBD_ASSIGN_OR_RETURN(r.done, finish_read(r.buf, r.len, r.off, 0));
    }
    return Status::ok();
  }
  Ring* ring = thread_ring();
  if (!ring) return LocalFile::pread_batch(reqs);
  for (size_t base = 0; base < reqs.size();) {
    // The submission queue is empty here (every batch is drained before
    // returning), so up to kRingDepth entries are available.
    size_t n = 0;
    for (; n < std::min<size_t>(kRingDepth, reqs.size() - base); n++) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring->ring);
      if (!sqe) break;
      ReadReq& r = reqs[base + n];
      io_uring_prep_read(sqe, fd_, r.buf, unsigned(r.len), r.off);
      io_uring_sqe_set_data64(sqe, base + n);
    }
    if (n == 0) return LocalFile::pread_batch(reqs.subspan(base));
    size_t submitted = 0;
    while (submitted < n) {
      int rc = io_uring_submit(&ring->ring);
      if (rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) continue;
      if (rc < 0) {
        // The rest stays queued in the ring; this thread falls back to psync.
        ring->broken = true;
        if (submitted == 0) return Status::from_errno(-rc, "io_uring submit for " + path_);
        break;
      }
      submitted += size_t(rc);
    }
    // Every submitted read must complete before we return: they write into
    // the caller's buffers. Interrupted waits (signals) are retried; any
    // other failure means the ring is unusable, and retrying would spin.
    Status first_error;
    for (size_t seen = 0; seen < submitted;) {
      io_uring_cqe* cqe = nullptr;
      int rc = io_uring_wait_cqe(&ring->ring, &cqe);
      if (rc == -EINTR) continue;
      if (rc < 0) {
        // Tear the ring down; this thread falls back to psync. The kernel
        // cancels what it can, but reads already running in its workers may
        // still land in the caller's buffers after this returns.
        ring->broken = true;
        io_uring_queue_exit(&ring->ring);
        ring->ok = false;
        return Status(Code::kEIO, "io_uring wait for reads of " + path_ + " failed: " + std::strerror(-rc) + " (" +
                                      std::to_string(submitted - seen) + " of " + std::to_string(submitted) +
                                      " reads unfinished)");
      }
      seen++;
      ReadReq& r = reqs[io_uring_cqe_get_data64(cqe)];
      int res = cqe->res;
      io_uring_cqe_seen(&ring->ring, cqe);
      if (res < 0) {
        if (first_error.is_ok())
          first_error = Status::from_errno(-res, "read " + path_ + " at offset " + std::to_string(r.off));
        continue;
      }
      auto done = size_t(res) < r.len && res > 0 ? finish_read(r.buf, r.len, r.off, size_t(res)) : Result<size_t>(size_t(res));
      if (!done.is_ok()) {
        if (first_error.is_ok()) first_error = done.status();
        continue;
      }
      r.done = *done;
    }
    OBD_TRY(first_error);
    if (submitted < n) return Status(Code::kEIO, "io_uring accepted only part of a batch for " + path_);
    base += n;
  }
  return Status::ok();
}

}  // namespace obd
