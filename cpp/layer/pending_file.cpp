#include "layer/pending_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>

namespace obd::layer {
namespace {

// Live temporaries by id: (private directory, file inside it).
struct Registry {
  std::mutex mu;
  std::map<uint64_t, std::pair<std::string, std::string>> live;
  uint64_t next = 1;
  bool closed = false;
};

// Never destroyed: a signal may arrive while static destructors run.
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

void forget(uint64_t id) {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.live.erase(id);
}

void split(const std::string& path, std::string* dir, std::string* name) {
  size_t slash = path.rfind('/');
  *dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  *name = slash == std::string::npos ? path : path.substr(slash + 1);
}

// Makes a completed rename durable: the directory entry is on disk.
void sync_dir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  (void)::fsync(fd);
  ::close(fd);
}

bool same_file(const std::string& p, dev_t dev, ino_t ino) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && st.st_dev == dev && st.st_ino == ino;
}

}  // namespace

Status check_replaceable(const std::string& path, bool force) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::ok() : Status::from_errno(errno, path);
  }
  if (!S_ISREG(st.st_mode))
    return Status(Code::kEINVAL, path + ": exists and is not a regular file; refusing to replace it");
  if (!force) return Status(Code::kEEXIST, path + ": output exists (use -f to replace it)");
  return Status::ok();
}

Status rename_no_replace(const std::string& from, const std::string& to, bool sync) {
  int rc = ::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE);
  if (rc != 0 && (errno == EINVAL || errno == ENOSYS || errno == ENOTSUP)) {
    // The filesystem has no RENAME_NOREPLACE: link() refuses an existing name too.
    rc = ::link(from.c_str(), to.c_str());
    if (rc == 0) ::unlink(from.c_str());
  }
  if (rc != 0) {
    if (errno == EEXIST) return Status(Code::kEEXIST, to + ": exists; not replacing it with " + from);
    return Status::from_errno(errno, "rename " + from + " to " + to);
  }
  if (sync) {
    std::string dir, name;
    split(to, &dir, &name);
    sync_dir(dir);
  }
  return Status::ok();
}

Result<std::unique_ptr<PendingFile>> PendingFile::create(const std::string& path) {
  std::unique_ptr<PendingFile> p(new PendingFile);
  std::string name;
  split(path, &p->dir_, &name);
  if (name.empty() || name == "." || name == "..") return Status(Code::kEINVAL, path + ": not a file name");
  std::string tmpl = p->dir_ + "/." + name + ".partial.XXXXXX";
  Registry& r = registry();
  std::lock_guard lock(r.mu);  // held so a concurrent cleanup cannot miss it
  if (r.closed) return Status(Code::kCLOSED, path + ": the process is exiting; not starting an output");
  if (::mkdtemp(tmpl.data()) == nullptr) return Status::from_errno(errno, "temporary directory for " + path);
  p->path_ = path;
  p->temp_ = tmpl + "/" + name;
  p->id_ = r.next++;
  r.live.emplace(p->id_, std::make_pair(tmpl, p->temp_));
  return p;
}

PendingFile::~PendingFile() {
  if (published_) return;
  ::unlink(temp_.c_str());
  ::rmdir(temp_.substr(0, temp_.rfind('/')).c_str());
  forget(id_);
}

Status PendingFile::adopt() {
  struct stat st;
  if (::lstat(temp_.c_str(), &st) != 0) return Status::from_errno(errno, temp_);
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  adopted_ = true;
  return Status::ok();
}

Status PendingFile::publish(bool force, bool sync) {
  if (!adopted_ || !same_file(temp_, dev_, ino_)) {
    return Status(Code::kEIO, temp_ + ": the temporary output is gone or was replaced; not publishing " + path_);
  }
  Status s = rename_no_replace(temp_, path_, sync);
  if (s.code() == Code::kEEXIST) {
    if (!force) return Status(Code::kEEXIST, path_ + ": output exists (use -f to replace it)");
    OBD_TRY(check_replaceable(path_, true));
    if (::rename(temp_.c_str(), path_.c_str()) != 0)
      return Status::from_errno(errno, "rename " + temp_ + " to " + path_);
    if (sync) sync_dir(dir_);
  } else if (!s) {
    return s;
  }
  published_ = true;
  ::rmdir(temp_.substr(0, temp_.rfind('/')).c_str());
  forget(id_);
  return Status::ok();
}

void PendingFile::unpublish() {
  if (published_ && same_file(path_, dev_, ino_)) ::unlink(path_.c_str());
}

size_t remove_pending_files() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  r.closed = true;
  size_t n = 0;
  for (auto& [id, e] : r.live) {
    ::unlink(e.second.c_str());
    if (::rmdir(e.first.c_str()) == 0) n++;
  }
  r.live.clear();
  return n;
}

}  // namespace obd::layer
