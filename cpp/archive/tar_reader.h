// TarReader: a streaming parser for OCI layer tars. Reads ustar, POSIX pax
// (local and global headers, pax sparse 0.0/0.1/1.0), GNU (long names,
// base-256 numbers, old sparse) and v7 archives, in one forward pass, so a
// layer can be applied while it downloads. Whiteouts (.wh.*) are ordinary
// entries here; the ext4 apply interprets them.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "archive/byte_stream.h"
#include "common/status.h"
#include "io/file.h"

namespace obd {

struct TarEntry {
  enum class Type { kFile, kHardLink, kSymlink, kCharDev, kBlockDev, kDir, kFifo };
  Type type = Type::kFile;
  // Cleaned as containerd's apply does: relative to the root, no leading '/',
  // no '.' or '..' components, no trailing '/'; "" is the root itself.
  std::string path;
  // Hard link: the cleaned target path. Symlink: the target verbatim.
  std::string link;
  uint32_t mode = 0;  // permission bits with setuid/setgid/sticky (07777)
  uint32_t uid = 0, gid = 0;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;  // from pax mtime; 0 for plain headers
  uint64_t size = 0;        // logical size (a sparse file's real size); 0 for non-files
  uint32_t devmajor = 0, devminor = 0;
  // pax SCHILY.xattr.* and LIBARCHIVE.xattr.* (decoded), in header order.
  std::vector<std::pair<std::string, std::string>> xattrs;
  // Data segments of a sparse file, in order; empty for a dense file.
  std::vector<Extent> sparse;
  // Where the entry's stored data starts in the uncompressed tar stream.
  uint64_t data_offset = 0;
};

const char* tar_type_name(TarEntry::Type t);

class TarReader {
 public:
  // Reads `stream` as it is; wrap it with make_decompressing_stream first
  // for compressed layers.
  static Result<std::unique_ptr<TarReader>> open(ByteStreamPtr stream);

  // Moves to the next entry, skipping unread data of the current one.
  // Returns false at the end of the archive (two zero blocks or a clean EOF).
  // After an error, every later call returns the same error.
  Result<bool> next(TarEntry* e);

  // The current entry's stored bytes in order: for a sparse file, its data
  // segments back to back in map order. 0 when they are all read.
  Result<size_t> read_data(void* buf, size_t n);

  // Stored bytes of the current entry not yet returned by read_data.
  uint64_t data_remaining() const { return remaining_; }
  // Compressed bytes read from the source so far.
  uint64_t consumed() const { return stream_->consumed(); }
  // Position in the uncompressed tar stream.
  uint64_t offset() const { return pos_; }

  ~TarReader();

 private:
  struct Pending;
  explicit TarReader(ByteStreamPtr stream);
  Result<bool> next_entry(TarEntry* e);
  Result<size_t> read_raw(void* buf, size_t n);
  Status read_exact(void* buf, size_t n, const std::string& what);
  Status skip(uint64_t n, const std::string& what);
  Result<std::string> read_meta(uint64_t size, const std::string& what);
  Result<bool> read_header_block(uint8_t* blk);
  Status finish_entry(const uint8_t* blk, Pending& p, TarEntry* e);
  Status drain();
  Status error(Code c, const std::string& what, uint64_t off) const;

  ByteStreamPtr stream_;
  uint64_t pos_ = 0;        // uncompressed bytes read
  uint64_t remaining_ = 0;  // stored data bytes left in the current entry
  uint64_t padding_ = 0;    // zero fill after the current entry's data
  std::string cur_name_;    // current entry, for messages
  std::vector<std::pair<std::string, std::string>> global_pax_;
  bool ended_ = false;
  Status failed_;                // sticky: the stream position is unknown after an error
  std::vector<uint8_t> scratch_;  // for skipping data
};

}  // namespace obd
