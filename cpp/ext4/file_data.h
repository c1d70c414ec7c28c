// Regular file contents: streams an entry's data from the tar into blocks
// allocated in large contiguous runs (ext2fs_fallocate per chunk of up to
// 8 MiB), writing whole chunks at once. Holes of sparse files stay holes.
#pragma once
#include <ext2fs/ext2fs.h>

#include <cstdint>
#include <vector>

#include "archive/tar_reader.h"
#include "common/status.h"
#include "ext4/fs.h"
#include "ext4/inode.h"

namespace obd::ext4 {

class DataWriter {
 public:
  explicit DataWriter(const Fs& fs);
  // Fills regular file `ino` (fresh, empty, in `b`) with the current entry's
  // data and sets its size. `b` is updated; the caller writes it.
  Status write(ext2_ino_t ino, InodeBuf& b, TarReader& tar, const TarEntry& e);

 private:
  Status put_from_tar(TarReader& tar, uint64_t pos, uint64_t len, const TarEntry& e);
  Status flush();

  const Fs& fs_;
  std::vector<uint8_t> buf_;
  uint64_t bs_;
  // The chunk being filled: logical blocks from chunk_lblk_, fill_ bytes.
  ext2_ino_t ino_ = 0;
  InodeBuf* inode_ = nullptr;
  bool active_ = false;
  uint64_t chunk_lblk_ = 0;
  size_t fill_ = 0;
  // Blocks are allocated ahead in windows of up to 128 MiB (one extent)
  // within the current data segment: [alloc_begin_, alloc_end_).
  uint64_t alloc_begin_ = 0, alloc_end_ = 0;
  uint64_t seg_end_blk_ = 0;    // end block of the segment being read
  uint64_t chunk_seg_end_ = 0;  // ... and of the one the chunk's last bytes came from
  // Where the next file's data goes: right after the previous file's, so a
  // layer's data is laid out sequentially.
  blk64_t goal_ = ~0ull;
};

}  // namespace obd::ext4
