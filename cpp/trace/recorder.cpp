#include "trace/recorder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include "layer/pending_file.h"

namespace obd::trace {

namespace {

class RecordingFile final : public File {
 public:
  RecordingFile(std::shared_ptr<Recorder> rec, uint32_t layer, FilePtr inner)
      : rec_(std::move(rec)), layer_(layer), inner_(std::move(inner)) {}
  const std::string& name() const override { return inner_->name(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override {
    Result<size_t> got = inner_->pread(buf, len, off);
    if (got.is_ok() && *got > 0 && rec_->recording()) {
      Record r{kOpRead, layer_, *got, int64_t(off)};
      rec_->add({&r, 1});
    }
    return got;
  }
  // The stack reads its lowers in batches; record each request that read.
  Status pread_batch(std::span<ReadReq> reqs) override {
    OBD_TRY(inner_->pread_batch(reqs));
    if (!rec_->recording()) return Status::ok();
    Record small[16];
    std::vector<Record> many;
    Record* out = small;
    if (reqs.size() > std::size(small)) {
      many.resize(reqs.size());
      out = many.data();
    }
    size_t n = 0;
    for (const ReadReq& r : reqs)
      if (r.done > 0) out[n++] = {kOpRead, layer_, r.done, int64_t(r.off)};
    rec_->add({out, n});
    return Status::ok();
  }
  Result<std::vector<Extent>> data_extents(uint64_t from) override { return inner_->data_extents(from); }

 private:
  std::shared_ptr<Recorder> rec_;
  uint32_t layer_;
  FilePtr inner_;
};

Status remove_if_there(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::from_errno(errno, "removing " + path);
  return Status::ok();
}

}  // namespace

Recorder::Recorder(std::string path, std::chrono::milliseconds poll)
    : path_(std::move(path)),
      lock_(path_ + ".lock"),
      ok_(path_ + ".ok"),
      poll_(std::max(poll, std::chrono::milliseconds(1))) {}

Result<std::shared_ptr<Recorder>> Recorder::start(std::string path, std::chrono::milliseconds poll) {
  std::shared_ptr<Recorder> rec(new Recorder(std::move(path), poll));
  // A recorder that failed to start writes no trace when it goes.
  auto fail = [&](Status s) {
    rec->finished_ = true;
    return s;
  };
  if (Status s = remove_if_there(rec->ok_); !s) return fail(s);
  int fd = ::open(rec->lock_.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) return fail(Status::from_errno(errno, "creating " + rec->lock_));
  ::close(fd);
  // The watcher waits for wake_mu_, so it sees watcher_id_ set.
  std::lock_guard lock(rec->wake_mu_);
  try {
    rec->watcher_ = std::thread([r = rec.get()] { r->watch(); });
  } catch (const std::system_error& e) {
    (void)remove_if_there(rec->lock_);
    return fail(Status(Code::kEAGAIN, "starting the trace recorder for " + rec->path_ + ": " + e.what()));
  }
  rec->watcher_id_ = rec->watcher_.get_id();
  return rec;
}

Recorder::~Recorder() {
  (void)finish();  // the result was there for whoever asked
}

FilePtr Recorder::wrap(uint32_t layer, FilePtr content) {
  return std::make_shared<RecordingFile>(shared_from_this(), layer, std::move(content));
}

void Recorder::add(std::span<const Record> recs) {
  if (recs.empty()) return;
  std::lock_guard lock(mu_);
  // Checked again under the lock: nothing is added once finish() took the list.
  if (!recording_.load(std::memory_order_relaxed)) return;
  // Beyond what a trace file may hold (and load() accepts) reads go unrecorded.
  if ((records_.size() + recs.size()) * kRecordSize > kMaxTraceSize - kHeaderSize) return;
  records_.insert(records_.end(), recs.begin(), recs.end());
}

void Recorder::watch() {
  std::unique_lock lock(wake_mu_);
  while (!wake_.wait_for(lock, poll_, [this] { return stop_; })) {
    if (::access(lock_.c_str(), F_OK) != 0 && errno == ENOENT) {
      lock.unlock();
      (void)finish();  // kept in result_ for finish()'s later callers
      return;
    }
  }
}

Status Recorder::finish() {
  {
    std::lock_guard lock(wake_mu_);
    stop_ = true;
  }
  wake_.notify_all();
  Status st;
  {
    std::lock_guard lock(finish_mu_);
    if (!finished_) {
      result_ = write_trace();
      finished_ = true;
    }
    st = result_;
  }
  // The watcher may be the caller (the lock was deleted); it never joins itself.
  if (std::this_thread::get_id() != watcher_id_) {
    std::lock_guard lock(join_mu_);
    if (watcher_.joinable()) watcher_.join();
  }
  return st;
}

Status Recorder::write_trace() {
  std::vector<Record> recs;
  {
    std::lock_guard lock(mu_);
    recording_.store(false, std::memory_order_release);
    recs.swap(records_);
  }
  std::vector<uint8_t> bytes = encode(recs);
  OBD_ASSIGN_OR_RETURN(auto pending, layer::PendingFile::create(path_));
  {
    OBD_ASSIGN_OR_RETURN(FilePtr f, open_local(pending->temp_path(), OpenMode::kCreateExclusive));
    OBD_TRY(f->pwrite(bytes.data(), bytes.size(), 0));
    OBD_TRY(f->sync());
  }
  OBD_TRY(pending->adopt());
  // Replaces the empty file that asked for recording.
  OBD_TRY(pending->publish(true));
  OBD_TRY(remove_if_there(lock_));
  int fd = ::open(ok_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) return Status::from_errno(errno, "creating " + ok_);
  ::close(fd);
  return Status::ok();
}

}  // namespace obd::trace
