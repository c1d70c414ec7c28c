// A writable LSMT layer (§2.4, §2.5). Append mode: every write is appended to
// the data file and logged as an entry in the index file. Sparse mode: one
// data file holding the device image at 4096 + LBA*512; its index is the set
// of allocated extents. Thread safety: writes may come from several threads;
// the owner takes a shared lock around lookups (see Image). Appended data
// never moves, and a write's data lands before its entry is published.
// Opened by path, a layer holds a lock on its files (flock): exclusive for a
// writer, shared for a reader, so a second writer fails with EBUSY.
#pragma once
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
#include <vector>

#include "common/rw_mutex.h"
#include "io/file.h"
#include "lsmt/index.h"

namespace obd::lsmt {

struct CreateOptions {
  uint64_t virtual_size = 0;  // bytes, a multiple of 512
  Uuid uuid{};                // random when all zero
  Uuid parent_uuid{};
  bool sparse = false;
};

// Creates the files of an empty writable layer. The files must not exist.
// For a sparse layer the index file is created empty, as overlaybd-create does.
Status create_rw_layer(const std::string& data_path, const std::string& index_path, const CreateOptions& opts,
                       IoEngine engine = default_io_engine());

// Largest write logged as one entry (upstream's default max IO size).
constexpr uint64_t kMaxIoSectors = (4u << 20) / kSector;
// Host filesystem block: sparse layers are indexed at this granularity.
constexpr uint64_t kSparseBlockSectors = 4096 / kSector;

class RwLayer {
 public:
  // Opens a writable layer. `index` may be null or empty for a sparse layer
  // (it is not used); an append layer needs its index, header included.
  static Result<std::unique_ptr<RwLayer>> open(FilePtr data, FilePtr index);
  // Opens the layer's files by path. An empty `index` path means none.
  // Locks the files: EBUSY while another open writes (or, for a writer,
  // reads) the layer.
  static Result<std::unique_ptr<RwLayer>> open(const std::string& data, const std::string& index, bool writable,
                                               IoEngine engine = default_io_engine());

  uint64_t virtual_size() const { return header_.virtual_size; }
  bool sparse() const { return header_.is_sparse(); }
  const Record& header() const { return header_; }
  const FilePtr& data_file() const { return data_; }

  // Lookups under the caller's shared lock of mutex().
  const RwIndex& index() const { return index_; }
  RwMutex& mutex() const { return mu_; }

  // Writes `nsect` sectors at `lba`; takes the exclusive lock itself, only
  // to reserve space and to publish the entry, not across the data write.
  Status write(const void* buf, uint64_t lba, uint64_t nsect);
  // Discards: append mode logs zeroed entries; sparse mode punches holes.
  Status discard(uint64_t lba, uint64_t nsect);
  Status sync();
  // The resolved extents in LBA order (for commit and seal).
  std::vector<Segment> resolved() const;
  // Appends the index and a trailer to the data file, making it a read-only
  // layer in place (overlaybd-commit --seal). The layer is unusable after.
  Status seal();
  // Sets the virtual size (overlaybd-resize, §6.7): both headers' field;
  // a sparse data file is truncated to match. Shrinking drops what lies
  // beyond the new end (rw_resize.cpp).
  Status set_virtual_size(uint64_t vsize);

 private:
  RwLayer(FilePtr data, FilePtr index, Record header) : data_(std::move(data)), index_file_(std::move(index)),
                                                        header_(std::move(header)) {}
  Status load_append_index(uint64_t data_size);
  Status load_sparse_extents();
  // Logs `segs` in the index file and maps them (caller holds the lock).
  Status append_entries(std::span<const Segment> segs);
  // The same for a write whose data has landed: takes the lock itself.
  Status publish(std::span<const Segment> segs);

  FilePtr data_, index_file_;
  Record header_;
  RwIndex index_;
  mutable RwMutex mu_;
  RwMutex punch_mu_;  // sparse: writes share it, discards own it
  uint64_t data_end_ = 0;   // next append position in the data file (bytes)
  uint64_t index_end_ = 0;  // next entry position in the index file (bytes)
  bool sealed_ = false;
};

}  // namespace obd::lsmt
