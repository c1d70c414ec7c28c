// A local file read and written with pread/pwrite (the psync engine), and the
// io_uring engine that overrides the read paths with a per-thread ring.
#pragma once
#include "io/file.h"

namespace obd {

class LocalFile : public File {
 public:
  LocalFile(int fd, std::string path);
  ~LocalFile() override;
  const std::string& name() const override { return path_; }
  Result<uint64_t> size() override;
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override;
  Status pwrite(const void* buf, size_t len, uint64_t off) override;
  Status punch_hole(uint64_t off, uint64_t len) override;
  Status truncate(uint64_t size) override;
  Status sync() override;
  Result<std::vector<Extent>> data_extents(uint64_t from) override;
  Status try_lock(bool exclusive) override;

 protected:
  // Completes a read that io_uring returned short (signals, page boundaries).
  // Inside a NoWaitScope: reads only what needs no storage I/O.
  Result<size_t> finish_read(void* buf, size_t len, uint64_t off, size_t got);

  int fd_;
  std::string path_;
  bool in_memory_;  // tmpfs or ramfs: a read never waits on storage
};

class UringFile final : public LocalFile {
 public:
  using LocalFile::LocalFile;
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override;
  Status pread_batch(std::span<ReadReq> reqs) override;
};

// True when this process can set up an io_uring (checked once).
bool io_uring_available();

}  // namespace obd
