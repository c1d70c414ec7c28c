// The ZFile writer compresses each batch of blocks on its threads: the
// bytes must not depend on the thread count, every block must read back,
// a failing output must fail the writer for good, and a writer dropped
// before finish() must stop cleanly.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "io/file.h"
#include "test_util.h"
#include "zfile/reader.h"
#include "zfile/writer.h"

namespace obd {
namespace {

// Text-like runs and random runs: both compressible and incompressible blocks.
std::vector<uint8_t> mixed(size_t n) {
  std::mt19937_64 rng(42);
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; i++) v[i] = (i / 8192) % 3 == 0 ? uint8_t(rng()) : uint8_t("overlaybd "[i % 10]);
  return v;
}

std::vector<uint8_t> bytes_of(File& f) {
  std::vector<uint8_t> out(f.size().value());
  EXPECT_TRUE(f.read_exact(out.data(), out.size(), 0, Code::kEIO, "test").is_ok());
  return out;
}

// Writes `raw` in appends of uneven sizes; returns the ZFile.
Result<FilePtr> write(const std::vector<uint8_t>& raw, unsigned threads, uint32_t block_size) {
  FilePtr out = make_memory_file("out.zfile");
  ZFileOptions o;
  o.threads = threads;
  o.block_size = block_size;
  OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(out, o));
  for (size_t at = 0; at < raw.size();) {
    size_t n = std::min<size_t>(raw.size() - at, 77777);
    OBD_TRY(w->append(raw.data() + at, n));
    at += n;
  }
  OBD_TRY(w->finish());
  if (w->stored_size() != out->size().value()) return Status(Code::kEIO, "stored_size is not the file size");
  return out;
}

TEST(ZFileWriter, BytesDoNotDependOnThreadsAcrossManyBatches) {
  // 10.5 MiB: ten full 1 MiB batches and a partial one with a partial block.
  std::vector<uint8_t> raw = mixed((21u << 19) + 1000);
  for (uint32_t bs : {4096u, 65536u}) {
    ASSERT_OBD_ASSIGN(FilePtr one, write(raw, 1, bs));
    std::vector<uint8_t> want = bytes_of(*one);
    for (unsigned threads : {2u, 3u, 8u}) {
      ASSERT_OBD_ASSIGN(FilePtr got, write(raw, threads, bs));
      EXPECT_EQ(bytes_of(*got), want) << "threads " << threads << ", block size " << bs;
    }
    ASSERT_OBD_ASSIGN(FilePtr r, open_zfile(one));
    EXPECT_EQ(bytes_of(*r), raw) << "block size " << bs;
  }
}

// Refuses writes past `limit` bytes, as a full disk would.
class FullFile final : public File {
 public:
  explicit FullFile(uint64_t limit) : inner_(make_memory_file("full")), limit_(limit) {}
  const std::string& name() const override { return inner_->name(); }
  Result<uint64_t> size() override { return inner_->size(); }
  Result<size_t> pread(void* buf, size_t len, uint64_t off) override { return inner_->pread(buf, len, off); }
  Status pwrite(const void* buf, size_t len, uint64_t off) override {
    if (off + len > limit_) return Status(Code::kENOSPC, "full: no space");
    return inner_->pwrite(buf, len, off);
  }

 private:
  FilePtr inner_;
  uint64_t limit_;
};

TEST(ZFileWriter, AFailedWriteIsReportedAndSticks) {
  std::vector<uint8_t> raw = mixed(6u << 20);
  ZFileOptions o;
  o.threads = 2;
  ASSERT_OBD_ASSIGN(auto w, ZFileWriter::create(std::make_shared<FullFile>(2u << 20), o));
  Status first;
  for (size_t at = 0; at < raw.size() && first.is_ok(); at += 65536) first = w->append(raw.data() + at, 65536);
  if (first.is_ok()) first = w->finish();
  EXPECT_EQ(first.code(), Code::kENOSPC) << first.to_string();
  EXPECT_EQ(w->append(raw.data(), 1).code(), Code::kENOSPC);
  EXPECT_EQ(w->finish().code(), Code::kENOSPC);
}

// Dropped without finish(), with full batches written and a partial one
// pending: its compressing threads stop and its buffers go (ASan checks the
// latter in the sanitizer build).
TEST(ZFileWriter, ADroppedWriterStopsCleanly) {
  std::vector<uint8_t> raw = mixed((2u << 20) + 12345);
  ZFileOptions o;
  o.threads = 4;
  FilePtr out = make_memory_file("x");
  {
    ASSERT_OBD_ASSIGN(auto w, ZFileWriter::create(out, o));
    ASSERT_OBD_OK(w->append(raw.data(), raw.size()));
    EXPECT_GT(w->stored_size(), 0u);  // the full batches were written
  }
  EXPECT_GT(out->size().value(), 0u);
}

}  // namespace
}  // namespace obd
