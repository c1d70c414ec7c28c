#include "image/dump.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace obd {

namespace {

// Copies `extents` of the image to fd: with pwrite at base + offset when
// `positional`, else with write in order (pipes, or files opened to append).
Status copy_extents(Image& img, int fd, uint64_t base, const std::vector<Extent>& extents, bool positional) {
  const uint64_t size = img.virtual_size();
  constexpr size_t kChunk = 4 << 20;
  std::vector<uint8_t> buf(kChunk);
  for (const Extent& e : extents) {
    for (uint64_t off = e.off, end = std::min(e.off + e.len, size); off < end;) {
      size_t n = size_t(std::min<uint64_t>(kChunk, end - off));
      OBD_ASSIGN_OR_RETURN(size_t got, img.pread(buf.data(), n, off));
      if (got != n) return Status(Code::kINTERNAL, "short read of the image at " + std::to_string(off));
      for (size_t w = 0; w < n;) {
        ssize_t r = positional ? ::pwrite(fd, buf.data() + w, n - w, off_t(base + off + w))
                               : ::write(fd, buf.data() + w, n - w);
        if (r < 0) {
          if (errno == EINTR) continue;
          if (errno == EAGAIN) {  // Node leaves stdout pipes non-blocking: wait until writable
            pollfd p{fd, POLLOUT, 0};
            ::poll(&p, 1, -1);
            continue;
          }
          return Status::from_errno(errno, "write the dump at " + std::to_string(off + w));
        }
        w += size_t(r);
      }
      off += n;
    }
  }
  return Status::ok();
}

// The device as a sparse range [base, base + size) of a regular file: the
// range is cut to a hole first, then only extents that may hold data are
// written, so whatever comes before base stays.
Status dump_sparse(Image& img, int fd, uint64_t base) {
  const uint64_t size = img.virtual_size();
  if (::ftruncate(fd, off_t(base)) != 0 || ::ftruncate(fd, off_t(base + size)) != 0)
    return Status::from_errno(errno, "truncate the dump file");
  OBD_ASSIGN_OR_RETURN(auto extents, img.data_extents(0));
  return copy_extents(img, fd, base, extents, true);
}

}  // namespace

Status dump_image(Image& img, int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "fstat fd " + std::to_string(fd));
  const uint64_t size = img.virtual_size();
  if (!S_ISREG(st.st_mode)) return copy_extents(img, fd, 0, {{0, size}}, false);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) return Status::from_errno(errno, "fcntl fd " + std::to_string(fd));
  if (flags & O_APPEND) {
    // `>> file`: the device goes after what the file holds. pwrite ignores
    // its offset under O_APPEND, so the flag is off for the dump.
    if (::fcntl(fd, F_SETFL, flags & ~O_APPEND) != 0) return Status::from_errno(errno, "fcntl fd " + std::to_string(fd));
    Status s = dump_sparse(img, fd, uint64_t(st.st_size));
    if (::fcntl(fd, F_SETFL, flags) != 0 && s.is_ok()) s = Status::from_errno(errno, "fcntl fd " + std::to_string(fd));
    return s;
  }
  // `> file`, or a file already written to: the device starts at the
  // descriptor's offset, which then moves past it as write() would.
  off_t base = ::lseek(fd, 0, SEEK_CUR);
  if (base < 0) return Status::from_errno(errno, "lseek fd " + std::to_string(fd));
  OBD_TRY(dump_sparse(img, fd, uint64_t(base)));
  if (::lseek(fd, off_t(uint64_t(base) + size), SEEK_SET) < 0)
    return Status::from_errno(errno, "lseek fd " + std::to_string(fd));
  return Status::ok();
}

}  // namespace obd
