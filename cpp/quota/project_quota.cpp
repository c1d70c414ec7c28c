#include "quota/project_quota.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/quota.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace obd::quota {
namespace {

#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd 443  // the same number on every architecture (Linux 5.14)
#endif
#ifndef PRJQUOTA
#define PRJQUOTA 2
#endif

class Dir {
 public:
  explicit Dir(const std::string& path) : fd_(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {}
  ~Dir() {
    if (fd_ >= 0) ::close(fd_);
  }
  Dir(const Dir&) = delete;
  Dir& operator=(const Dir&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

Status explain(int err, const std::string& what) {
  switch (err) {
    case ENOTTY:
    case EOPNOTSUPP:
      return Status::from_errno(err, what + ": the filesystem has no project IDs (use ext4 or XFS)");
    case ESRCH:
      return Status::from_errno(err, what + ": project quotas are off on this filesystem (mount it with prjquota)");
    case ENOSYS:
      return Status::from_errno(err, what + ": the kernel has no quotactl_fd (Linux 5.14 or later)");
    default:
      return Status::from_errno(err, what);
  }
}

// Q_SETQUOTA through a descriptor of any directory on the filesystem, so the
// caller need not name its block device.
Status set_limit(int fd, uint32_t id, uint64_t bytes, const std::string& what) {
  if_dqblk q{};
  q.dqb_bhardlimit = (bytes + 1023) / 1024;  // in 1 KiB quota blocks (QIF_DQBLKSIZE)
  q.dqb_bsoftlimit = 0;
  q.dqb_valid = QIF_BLIMITS;
  if (::syscall(SYS_quotactl_fd, fd, QCMD(Q_SETQUOTA, PRJQUOTA), id, &q) != 0)
    return explain(errno, what + ": set the block limit of project " + std::to_string(id));
  return Status::ok();
}

}  // namespace

Result<uint32_t> project_id(const std::string& path) {
  Dir d(path);
  if (d.fd() < 0) return Status::from_errno(errno, path + ": open for its project ID");
  fsxattr a{};
  if (::ioctl(d.fd(), FS_IOC_FSGETXATTR, &a) != 0) return explain(errno, path + ": read its project ID");
  return uint32_t(a.fsx_projid);
}

Status set_project_quota(const std::string& dir, uint32_t id, uint64_t bytes) {
  if (id == 0) return Status(Code::kEINVAL, dir + ": project ID 0 is the default project and cannot be limited");
  Dir d(dir);
  if (d.fd() < 0) return Status::from_errno(errno, dir + ": open for a project quota");
  fsxattr a{};
  if (::ioctl(d.fd(), FS_IOC_FSGETXATTR, &a) != 0) return explain(errno, dir + ": read its project ID");
  a.fsx_projid = id;
  a.fsx_xflags |= FS_XFLAG_PROJINHERIT;  // what is created inside counts against the same project
  if (::ioctl(d.fd(), FS_IOC_FSSETXATTR, &a) != 0) return explain(errno, dir + ": set project ID " + std::to_string(id));
  return set_limit(d.fd(), id, bytes, dir);
}

Status clear_project_limit(const std::string& path, uint32_t id) {
  Dir d(path);
  if (d.fd() < 0) return Status::from_errno(errno, path + ": open to clear a project quota");
  return set_limit(d.fd(), id, 0, path);
}

}  // namespace obd::quota
