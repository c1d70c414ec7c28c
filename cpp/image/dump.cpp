#include "image/dump.h"

#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

namespace obd {

Status dump_image(Image& img, int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::from_errno(errno, "fstat fd " + std::to_string(fd));
  const uint64_t size = img.virtual_size();
  const bool sparse = S_ISREG(st.st_mode);
  std::vector<Extent> extents{{0, size}};
  if (sparse) {
    if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, off_t(size)) != 0)
      return Status::from_errno(errno, "truncate the dump file");
    OBD_ASSIGN_OR_RETURN(extents, img.data_extents(0));
  }
  constexpr size_t kChunk = 4 << 20;
  std::vector<uint8_t> buf(kChunk);
  for (const Extent& e : extents) {
    for (uint64_t off = e.off, end = std::min(e.off + e.len, size); off < end;) {
      size_t n = size_t(std::min<uint64_t>(kChunk, end - off));
      OBD_ASSIGN_OR_RETURN(size_t got, img.pread(buf.data(), n, off));
      if (got != n) return Status(Code::kINTERNAL, "short read of the image at " + std::to_string(off));
      for (size_t w = 0; w < n;) {
        ssize_t r = sparse ? ::pwrite(fd, buf.data() + w, n - w, off_t(off + w)) : ::write(fd, buf.data() + w, n - w);
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

}  // namespace obd
