#include "frontend/tcmu/ring_runner.h"

namespace obd::frontend::tcmu {
namespace {

ScsiResult internal_failure() { return check_condition(SenseKey::kHardwareError, 0x44, 0x00); }

}  // namespace

RingRunner::RingRunner(Ring& ring, const DiskInfo& disk, IoQueue& queue, std::function<void()> notify, unsigned depth)
    : ring_(ring), disk_(disk), queue_(queue), sync_io_(queue), notify_(std::move(notify)) {
  for (unsigned i = 0; i < std::max(depth, 1u); i++) {
    slots_.push_back(std::make_unique<Slot>());
    slots_.back()->owner = this;
    free_.push_back(slots_.back().get());
  }
}

RingRunner::~RingRunner() { drain(); }

void RingRunner::finish(Slot& s, const ScsiResult& res) {
  ring_.complete(s.cmd, res);
  completed_++;
  free_.push_back(&s);
}

void RingRunner::notify_if_done() {
  if (completed_ && notify_) notify_();
  completed_ = 0;
}

void RingRunner::on_io(IoRequest& req, const Status& st) {
  auto& s = *static_cast<Slot*>(req.ctx);
  if (st && s.plan.fua) {
    s.flush = IoRequest{.op = IoOp::kFlush, .done = on_flush, .ctx = &s};
    s.owner->queue_.submit(s.flush);
    return;
  }
  s.owner->finish(s, read_write_result(s.plan, st));
}

void RingRunner::on_flush(IoRequest& req, const Status& st) {
  auto& s = *static_cast<Slot*>(req.ctx);
  s.owner->finish(s, read_write_result(s.plan, st));
}

void RingRunner::start(Slot& s) {
  if (s.cmd.malformed) return finish(s, internal_failure());
  std::span<const uint8_t> cdb(s.cmd.cdb, s.cmd.cdb_len);
  ScsiResult res;
  switch (plan_read_write(cdb, s.cmd.iov, disk_, s.plan, res)) {
    case RwStep::kSubmit:
      s.plan.req.done = on_io;
      s.plan.req.ctx = &s;
      queue_.submit(s.plan.req);
      return;
    case RwStep::kDone:
      return finish(s, res);
    case RwStep::kNotRw:
      // Runs to its end here; reaping for it may finish other slots too.
      return finish(s, execute_cdb(cdb, s.cmd.iov, disk_, sync_io_));
  }
}

Result<size_t> RingRunner::pump() {
  queue_.reap(0);
  Status failed;
  while (!free_.empty()) {
    Slot* s = free_.back();
    free_.pop_back();
    auto got = ring_.next(s->cmd);
    if (!got || !*got) {
      free_.push_back(s);
      if (!got) failed = got.status();
      break;
    }
    start(*s);
  }
  queue_.reap(0);  // a queue without workers finished them inside submit()
  size_t done = completed_;
  notify_if_done();
  if (!failed) return failed;
  return done;
}

void RingRunner::drain() {
  while (in_flight() && queue_.in_flight()) queue_.reap(1);
  notify_if_done();
}

}  // namespace obd::frontend::tcmu
