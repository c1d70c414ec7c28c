// Writing a ZFile as a stream (format spec §3): header, blocks, jump table,
// trailer, and optionally the header rewritten with the final index info as
// `overlaybd-commit -z` does. With the same library versions the output is
// byte-identical to upstream's (zstd always, see codec.h).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "io/sink.h"
#include "zfile/format.h"

namespace obd {

struct ZFileOptions {
  zfile::Algorithm algorithm = zfile::Algorithm::kLz4;
  uint32_t block_size = 4096;     // power of two, 4096..65536
  bool verify = true;             // per-block CRC after each stored block
  bool overwrite_header = false;  // `overlaybd-commit -z` style header (flags 0x1B)
  unsigned threads = 1;           // compressing threads; output does not depend on it
};

Status validate_options(const ZFileOptions& o);

class ZFileWriter final : public Sink {
 public:
  // Writes the initial header at offset 0 of `dst` (which should be empty).
  static Result<std::unique_ptr<ZFileWriter>> create(FilePtr dst, ZFileOptions opts);
  ~ZFileWriter() override;

  // Any sizes; data is cut into blocks as it arrives.
  Status append(const void* data, size_t len) override;
  // Compresses the tail, writes jump table and trailer (and header). Once.
  Status finish();

  // The ZFile's size so far (its final size after finish()).
  uint64_t stored_size() const { return pos_; }

 private:
  ZFileWriter(FilePtr dst, ZFileOptions opts);
  Status flush_blocks();
  zfile::Record record(uint64_t flags) const;
  Status fail(Status s);

  struct Impl;
  FilePtr dst_;
  ZFileOptions opts_;
  std::unique_ptr<Impl> impl_;
  std::vector<uint8_t> raw_;  // pending raw bytes: up to batch_blocks blocks
  size_t raw_len_ = 0;
  std::vector<uint32_t> lengths_;  // stored length of every block written
  uint64_t raw_total_ = 0;
  uint64_t pos_ = 0;
  uint64_t index_offset_ = 0;
  uint32_t index_crc_ = 0;
  bool finished_ = false;
  Status error_;  // sticky: a failed writer stays failed
};

}  // namespace obd
