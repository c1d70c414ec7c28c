// libfuse3 low-level session serving one file: inode 1 is the mount's root
// directory, inode 2 the device file. Each request runs on the libfuse
// thread that received it, through an IoQueue borrowed from a pool (a queue
// is used by one thread at a time; workers = 0 executes inside submit).
#define FUSE_USE_VERSION 312
#include "frontend/fuse/fuse_export.h"

#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace obd::frontend::fuse {
namespace {

constexpr fuse_ino_t kRootIno = FUSE_ROOT_ID;
constexpr fuse_ino_t kFileIno = 2;
constexpr uint64_t kSector = 512;
constexpr uint32_t kMaxIo = 1u << 20;  // max_write; reads are capped by the kernel's max_pages (256)
constexpr double kAttrTimeout = 3600;  // the size never changes while mounted

// What the kernel gets for a failed request. The backing store's failures
// (remote, cache, corrupt data) are all EIO to the block layer.
int errno_of(const Status& s) {
  switch (s.code()) {
    case Code::kEINVAL:
    case Code::kUNALIGNED:
    case Code::kOUT_OF_RANGE:
      return EINVAL;
    case Code::kEROFS:
      return EROFS;
    case Code::kENOSPC:
      return ENOSPC;
    case Code::kENOTSUP:
      return EOPNOTSUPP;
    default:
      return EIO;
  }
}

// Queues for the session threads: one is taken per request and put back,
// so a queue never has two users; at most one per concurrent thread exists.
class QueuePool {
 public:
  explicit QueuePool(std::shared_ptr<BlockDevice> dev) : dev_(std::move(dev)) {}

  Result<std::unique_ptr<IoQueue>> take() {
    {
      std::lock_guard lk(mu_);
      if (!free_.empty()) {
        auto q = std::move(free_.back());
        free_.pop_back();
        return q;
      }
    }
    QueueOptions o;
    o.workers = 0;         // the FUSE thread executes its own request
    o.signal_fd = false;   // and reaps it at once: nobody polls the fd
    o.max_io_bytes = kMaxIo;
    return dev_->open_queue(next_qid_++, o);
  }

  void give(std::unique_ptr<IoQueue> q) {
    std::lock_guard lk(mu_);
    free_.push_back(std::move(q));
  }

  void clear() {
    std::lock_guard lk(mu_);
    free_.clear();
  }

 private:
  std::shared_ptr<BlockDevice> dev_;
  std::mutex mu_;
  std::vector<std::unique_ptr<IoQueue>> free_;
  std::atomic<unsigned> next_qid_{0};
};

class FuseExport final : public Export {
 public:
  FuseExport(std::shared_ptr<BlockDevice> dev, std::string mount_dir, const ExportOptions& opts)
      : dev_(std::move(dev)), pool_(dev_), mount_dir_(std::move(mount_dir)), name_(opts.file_name),
        file_(mount_dir_ + "/" + opts.file_name), max_threads_(std::max(1u, opts.max_threads)), clone_fd_(opts.clone_fd) {}
  ~FuseExport() override { close(); }

  const std::string& file() const override { return file_; }

  Status start();
  void close() override;

  // Runs one request to completion on the calling thread.
  Status run(IoRequest& r) {
    OBD_ASSIGN_OR_RETURN(auto q, pool_.take());
    Status out;
    r.ctx = &out;
    r.done = [](IoRequest& req, const Status& s) { *static_cast<Status*>(req.ctx) = s; };
    q->submit(r);
    q->reap(1);
    pool_.give(std::move(q));
    return out;
  }

  struct stat attr_of(fuse_ino_t ino) const {
    struct stat st{};
    st.st_ino = ino;
    st.st_uid = getuid();
    st.st_gid = getgid();
    if (ino == kRootIno) {
      st.st_mode = S_IFDIR | 0755;
      st.st_nlink = 2;
    } else {
      st.st_mode = S_IFREG | (dev_->read_only() ? 0444 : 0644);
      st.st_nlink = 1;
      st.st_size = off_t(dev_->size());
      st.st_blocks = st.st_size / 512;
      st.st_blksize = 4096;
    }
    return st;
  }

  std::shared_ptr<BlockDevice> dev_;
  QueuePool pool_;
  std::string mount_dir_, name_, file_;
  unsigned max_threads_;
  bool clone_fd_;

 private:
  void abort_connection();
  bool wait_loop(std::chrono::milliseconds ms) {
    std::unique_lock lk(loop_mu_);
    return loop_cv_.wait_for(lk, ms, [this] { return loop_done_; });
  }

  fuse_session* se_ = nullptr;
  fuse_loop_config* cfg_ = nullptr;
  std::thread loop_;
  dev_t conn_dev_ = 0;
  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool loop_done_ = false;
  std::mutex close_mu_;
  bool closed_ = false;
};

FuseExport& self(fuse_req_t req) { return *static_cast<FuseExport*>(fuse_req_userdata(req)); }

void op_init(void* userdata, fuse_conn_info* conn) {
  if (conn->capable & FUSE_CAP_ASYNC_DIO) conn->want |= FUSE_CAP_ASYNC_DIO;  // loop keeps several reads in flight
  conn->max_write = kMaxIo;
  // Async direct I/O is background work for the kernel, 12 in flight by
  // default: let a loop device at queue depth 32 keep more outstanding.
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  FuseExport& x = self(req);
  if (parent != kRootIno || x.name_ != name) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  fuse_entry_param e{};
  e.ino = kFileIno;
  e.attr = x.attr_of(kFileIno);
  e.attr_timeout = e.entry_timeout = kAttrTimeout;
  fuse_reply_entry(req, &e);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  if (ino != kRootIno && ino != kFileIno) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = self(req).attr_of(ino);
  fuse_reply_attr(req, &st, kAttrTimeout);
}

// Times and modes are ignored; the size is fixed (a loop device never truncates).
void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  FuseExport& x = self(req);
  if (ino != kFileIno && ino != kRootIno) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  struct stat st = x.attr_of(ino);
  if ((to_set & FUSE_SET_ATTR_SIZE) && attr->st_size != st.st_size) {
    fuse_reply_err(req, ino == kFileIno ? EPERM : EISDIR);
    return;
  }
  fuse_reply_attr(req, &st, kAttrTimeout);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  FuseExport& x = self(req);
  if (ino != kRootIno) {
    fuse_reply_err(req, ENOTDIR);
    return;
  }
  const std::pair<const char*, fuse_ino_t> entries[] = {{".", kRootIno}, {"..", kRootIno}, {x.name_.c_str(), kFileIno}};
  std::vector<char> buf(size);
  size_t used = 0;
  for (off_t i = off; i < off_t(std::size(entries)); i++) {
    struct stat st = x.attr_of(entries[i].second);
    size_t n = fuse_add_direntry(req, buf.data() + used, size - used, entries[i].first, &st, i + 1);
    if (n > size - used) break;
    used += n;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  FuseExport& x = self(req);
  if (ino != kFileIno) {
    fuse_reply_err(req, EISDIR);
    return;
  }
  if ((fi->flags & O_ACCMODE) != O_RDONLY && x.dev_->read_only()) {
    fuse_reply_err(req, EROFS);
    return;
  }
  // No page cache: every read and write reaches the device (the loop driver
  // in direct-io mode bypasses it anyway; other readers stay coherent).
  fi->direct_io = 1;
  fi->keep_cache = 0;
  fuse_reply_open(req, fi);
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info*) {
  FuseExport& x = self(req);
  uint64_t dev_size = x.dev_->size();
  if (uint64_t(off) >= dev_size || size == 0) {
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  uint64_t end = std::min<uint64_t>(uint64_t(off) + size, dev_size);
  // The device takes whole sectors: widen an unaligned read (a plain `cat`).
  uint64_t a0 = uint64_t(off) / kSector * kSector;
  uint64_t a1 = std::min<uint64_t>((end + kSector - 1) / kSector * kSector, dev_size / kSector * kSector);
  if (a1 < end) {
    fuse_reply_err(req, EIO);  // a device size that is not whole sectors: its tail is unreadable
    return;
  }
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < a1 - a0) buf.resize(a1 - a0);
  iovec iov{buf.data(), size_t(a1 - a0)};
  IoRequest r;
  r.op = IoOp::kRead;
  r.offset = a0;
  r.length = a1 - a0;
  r.iov = &iov;
  r.iovcnt = 1;
  Status s = x.run(r);
  if (!s.is_ok()) {
    fuse_reply_err(req, errno_of(s));
    return;
  }
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data() + (off - a0)), end - off);
}

void op_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info*) {
  FuseExport& x = self(req);
  if (x.dev_->read_only()) {
    fuse_reply_err(req, EROFS);
    return;
  }
  if (uint64_t(off) + size > x.dev_->size()) {
    fuse_reply_err(req, ENOSPC);  // the file cannot grow
    return;
  }
  iovec iov{const_cast<char*>(data), size};
  IoRequest r;
  r.op = IoOp::kWrite;
  r.offset = off;
  r.length = size;
  r.iov = &iov;
  r.iovcnt = 1;
  Status s = x.run(r);  // an unaligned write fails with EINVAL (as O_DIRECT on a disk)
  if (!s.is_ok()) {
    fuse_reply_err(req, errno_of(s));
    return;
  }
  fuse_reply_write(req, size);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) {
  IoRequest r;
  r.op = IoOp::kFlush;
  Status s = self(req).run(r);
  fuse_reply_err(req, s.is_ok() ? 0 : errno_of(s));
}

// close(2) of a descriptor: nothing to do (fsync carries durability).
void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

// The loop driver turns DISCARD into PUNCH_HOLE and WRITE_ZEROES into
// PUNCH_HOLE (or ZERO_RANGE with NOUNMAP). A punched range must read as
// zeros, so both are write-zeroes; a hole may deallocate (zeroed entries),
// where a plain discard would let a sparse upper show the lowers again.
void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t off, off_t len, fuse_file_info*) {
  FuseExport& x = self(req);
  IoRequest r;
  r.op = IoOp::kWriteZeroes;
  r.offset = off;
  r.length = len;
  if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    r.may_unmap = true;
  } else if ((mode & ~FALLOC_FL_KEEP_SIZE) == FALLOC_FL_ZERO_RANGE) {
    r.may_unmap = false;
  } else {
    fuse_reply_err(req, EOPNOTSUPP);
    return;
  }
  if (x.dev_->read_only()) {
    fuse_reply_err(req, EROFS);
    return;
  }
  Status s = x.run(r);
  fuse_reply_err(req, s.is_ok() ? 0 : errno_of(s));
}

const fuse_lowlevel_ops kOps = [] {
  fuse_lowlevel_ops o{};
  o.init = op_init;
  o.lookup = op_lookup;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readdir = op_readdir;
  o.open = op_open;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.fsync = op_fsync;
  o.fallocate = op_fallocate;
  return o;
}();

Status FuseExport::start() {
  const char* argv[] = {"overlaybd-fuse", "-o", "fsname=overlaybd,subtype=overlaybd", nullptr};
  fuse_args args = FUSE_ARGS_INIT(3, const_cast<char**>(argv));
  se_ = fuse_session_new(&args, &kOps, sizeof kOps, this);
  fuse_opt_free_args(&args);
  if (!se_) return Status(Code::kEIO, mount_dir_ + ": cannot create a FUSE session (is /dev/fuse there?)");
  if (fuse_session_mount(se_, mount_dir_.c_str()) != 0) {
    fuse_session_destroy(se_);
    se_ = nullptr;
    return Status(Code::kEIO, mount_dir_ + ": FUSE mount failed (libfuse logged why on stderr)");
  }
  cfg_ = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg_, max_threads_);
  fuse_loop_cfg_set_clone_fd(cfg_, clone_fd_ ? 1 : 0);
  fuse_loop_cfg_set_idle_threads(cfg_, max_threads_);  // keep them: each holds a queue's worth of state
  loop_ = std::thread([this] {
    fuse_session_loop_mt(se_, cfg_);
    std::lock_guard lk(loop_mu_);
    loop_done_ = true;
    loop_cv_.notify_all();
  });
  // The connection's number, to abort it at close if the file is still in use.
  struct stat st;
  if (::stat(mount_dir_.c_str(), &st) == 0) conn_dev_ = st.st_dev;
  return Status::ok();
}

// /sys/fs/fuse/connections/<dev>/abort fails every request of the mount,
// queued or future. Only needed when the file is still open (a loop device
// left attached); fusectl is mounted there then if it is not yet.
void FuseExport::abort_connection() {
  if (!conn_dev_) return;
  std::string path = "/sys/fs/fuse/connections/" + std::to_string((major(conn_dev_) << 20) | minor(conn_dev_));
  if (::access(path.c_str(), F_OK) != 0) {
    ::mount("fusectl", "/sys/fs/fuse/connections", "fusectl", 0, nullptr);
    if (::access(path.c_str(), F_OK) != 0) return;  // gone: the mount was unused and is destroyed
  }
  int fd = ::open((path + "/abort").c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return;
  [[maybe_unused]] ssize_t n = ::write(fd, "1", 1);
  ::close(fd);
}

void FuseExport::close() {
  std::lock_guard lk(close_mu_);
  if (closed_) return;
  closed_ = true;
  if (se_) {
    fuse_session_exit(se_);
    // Closes the session fd and detaches the mount (MNT_DETACH as root):
    // once nothing uses the file the connection ends and the idle threads
    // wake with ENODEV. A loop device still attached would keep it alive.
    fuse_session_unmount(se_);
    if (!wait_loop(std::chrono::milliseconds(500))) abort_connection();
    if (loop_.joinable()) loop_.join();
    fuse_session_destroy(se_);
    se_ = nullptr;
  }
  if (cfg_) fuse_loop_cfg_destroy(cfg_);
  cfg_ = nullptr;
  pool_.clear();
  dev_->close();
}

}  // namespace

Result<std::unique_ptr<Export>> start_export(std::shared_ptr<BlockDevice> dev, const std::string& mount_dir,
                                             const ExportOptions& opts) {
  if (!dev) return Status(Code::kEINVAL, mount_dir + ": no device to export");
  if (opts.file_name.empty() || opts.file_name.find('/') != std::string::npos || opts.file_name == "." ||
      opts.file_name == "..")
    return Status(Code::kEINVAL, "FUSE export file name '" + opts.file_name + "' must be one path component");
  struct stat st;
  if (::stat(mount_dir.c_str(), &st) != 0) return Status::from_errno(errno, mount_dir + ": FUSE mount point");
  if (!S_ISDIR(st.st_mode)) return Status(Code::kEINVAL, mount_dir + ": FUSE mount point is not a directory");
  auto x = std::make_unique<FuseExport>(std::move(dev), mount_dir, opts);
  OBD_TRY(x->start());
  return std::unique_ptr<Export>(std::move(x));
}

}  // namespace obd::frontend::fuse
