#include "frontend/ublk/queue.h"

#include <liburing.h>
#include <sys/eventfd.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <future>
#include <vector>

#include "frontend/ublk/wire.h"

namespace obd::frontend::ublk {

namespace {
// user_data values that are not tags (tags are < 4096).
constexpr uint64_t kPollData = 1ull << 32;
constexpr uint64_t kStopData = 2ull << 32;

unsigned ring_entries(unsigned depth) {
  unsigned n = 8;
  while (n < depth + 4u) n <<= 1;
  return n;
}
}  // namespace

struct QueueThread::Impl {
  struct Tag {
    Impl* q = nullptr;
    uint16_t tag = 0;
    IoRequest req;
    iovec iov{};
  };

  QueueSetup s;
  std::unique_ptr<IoQueue> ioq;
  io_uring ring{};
  bool ring_ok = false;
  void* descs = MAP_FAILED;
  size_t descs_len = 0;
  uint8_t* bufs = static_cast<uint8_t*>(MAP_FAILED);
  size_t bufs_len = 0;
  int stop_fd = -1;
  std::vector<Tag> tags;
  std::thread thread;
  // Queue-thread state.
  unsigned fetching = 0;  // tags whose command sits in the kernel
  bool poll_armed = false;
  bool stopping = false;
  bool exiting = false;

  ~Impl() {
    if (thread.joinable()) {
      request_stop();
      thread.join();
    }
    ioq.reset();
    if (ring_ok) io_uring_queue_exit(&ring);
    if (descs != MAP_FAILED) munmap(descs, descs_len);
    if (bufs != MAP_FAILED) munmap(bufs, bufs_len);
    if (stop_fd >= 0) ::close(stop_fd);
  }

  void request_stop() {
    uint64_t one = 1;
    [[maybe_unused]] ssize_t rc = ::write(stop_fd, &one, sizeof one);
  }

  io_uring_sqe* sqe() {
    io_uring_sqe* e = io_uring_get_sqe(&ring);
    if (!e) {
      io_uring_submit(&ring);
      e = io_uring_get_sqe(&ring);
    }
    // The ring has room for every tag plus the two polls, so this is a bug.
    if (!e) std::abort();
    return e;
  }

  void io_cmd(uint32_t op, uint16_t tag, int32_t result) {
    io_uring_sqe* e = sqe();
    std::memset(reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(e)), 0, 128);  // a 128-byte SQE
    e->opcode = IORING_OP_URING_CMD;
    e->fd = s.cdev_fd;
    e->cmd_op = op;
    e->user_data = tag;
    auto* c = reinterpret_cast<ublksrv_io_cmd*>(e->cmd);
    c->q_id = static_cast<uint16_t>(s.qid);
    c->tag = tag;
    c->result = result;
    c->addr = reinterpret_cast<uintptr_t>(bufs + static_cast<size_t>(tag) * s.max_io_bytes);
    fetching++;
  }

  void arm_poll(int fd, uint64_t data) {
    io_uring_sqe* e = sqe();
    io_uring_prep_poll_add(e, fd, POLLIN);
    e->user_data = data;
  }

  static void done(IoRequest& req, const Status& st) {
    Tag& t = *static_cast<Tag*>(req.ctx);
    if (t.q->exiting) return;
    t.q->io_cmd(UBLK_U_IO_COMMIT_AND_FETCH_REQ, t.tag, commit_result(req, st.is_ok()));
  }

  void on_request(uint16_t tag) {
    Tag& t = tags[tag];
    const auto* d = static_cast<const ublksrv_io_desc*>(descs) + tag;
    if (!decode(*d, bufs + static_cast<size_t>(tag) * s.max_io_bytes, s.max_io_bytes, t.req, t.iov)) {
      io_cmd(UBLK_U_IO_COMMIT_AND_FETCH_REQ, tag, -EOPNOTSUPP);
      return;
    }
    ioq->submit(t.req);
  }

  void on_cqe(const io_uring_cqe& c) {
    if (c.user_data == kPollData) {
      poll_armed = false;
      return;
    }
    if (c.user_data == kStopData) {
      stopping = true;
      return;
    }
    fetching--;
    // ABORT (-ENODEV) when the device stops; other errors end the tag too.
    if (c.res == UBLK_IO_RES_OK && c.user_data < tags.size()) on_request(static_cast<uint16_t>(c.user_data));
  }

  void run() {
    while (true) {
      if (ioq->in_flight() == 0 && (stopping || fetching == 0)) break;
      int rc = io_uring_submit_and_wait(&ring, 1);
      if (rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) break;
      io_uring_cqe* cqe;
      unsigned head, n = 0;
      io_uring_for_each_cqe(&ring, head, cqe) {
        on_cqe(*cqe);
        n++;
      }
      io_uring_cq_advance(&ring, n);
      ioq->reap(0);  // completions queue their COMMIT_AND_FETCH
      if (!poll_armed) {
        arm_poll(ioq->completion_fd(), kPollData);
        poll_armed = true;
      }
    }
    io_uring_submit(&ring);  // commits queued by the last reap
    exiting = true;
    ioq.reset();  // waits for requests still executing (none unless the ring failed)
  }
};

QueueThread::QueueThread(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

QueueThread::~QueueThread() = default;

void QueueThread::request_stop() { impl_->request_stop(); }

Result<std::unique_ptr<QueueThread>> QueueThread::start(BlockDevice& dev, const QueueSetup& s) {
  auto q = std::make_unique<Impl>();
  q->s = s;
  std::string what = "ublk queue " + std::to_string(s.qid);
  QueueOptions qo;
  qo.workers = s.workers;
  qo.max_io_bytes = s.max_io_bytes;
  OBD_ASSIGN_OR_RETURN(q->ioq, dev.open_queue(s.qid, qo));
  q->stop_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (q->stop_fd < 0) return Status::from_errno(errno, what + ": eventfd");
  size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  q->descs_len = desc_length(s.depth, page);
  q->descs = mmap(nullptr, q->descs_len, PROT_READ, MAP_SHARED | MAP_POPULATE, s.cdev_fd, desc_offset(s.qid));
  if (q->descs == MAP_FAILED) return Status::from_errno(errno, what + ": mmap of the I/O descriptors");
  q->bufs_len = static_cast<size_t>(s.depth) * s.max_io_bytes;
  q->bufs = static_cast<uint8_t*>(mmap(nullptr, q->bufs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (q->bufs == MAP_FAILED) return Status::from_errno(errno, what + ": I/O buffers");
  q->tags.resize(s.depth);
  for (uint16_t t = 0; t < s.depth; t++) {
    q->tags[t].q = q.get();
    q->tags[t].tag = t;
    q->tags[t].req.done = &Impl::done;
    q->tags[t].req.ctx = &q->tags[t];
  }
  int rc = io_uring_queue_init(ring_entries(s.depth), &q->ring, IORING_SETUP_SQE128);
  if (rc < 0) return Status::from_errno(-rc, what + ": io_uring");
  q->ring_ok = true;
  // The fetches must come from the thread that serves the queue.
  std::promise<Status> ready;
  auto started = ready.get_future();
  Impl* p = q.get();
  q->thread = std::thread([p, &ready] {
    for (uint16_t t = 0; t < p->s.depth; t++) p->io_cmd(UBLK_U_IO_FETCH_REQ, t, 0);
    p->arm_poll(p->stop_fd, kStopData);
    int rc = io_uring_submit(&p->ring);
    if (rc < 0) {
      ready.set_value(Status::from_errno(-rc, "ublk queue " + std::to_string(p->s.qid) + ": submit FETCH_REQ"));
      return;
    }
    ready.set_value(Status::ok());
    p->run();
  });
  Status st = started.get();
  if (!st) return st;  // ~Impl joins the thread
  return std::unique_ptr<QueueThread>(new QueueThread(std::move(q)));
}

}  // namespace obd::frontend::ublk
