#include "image/layer_ops.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "lsmt/ro_layer.h"
#include "lsmt/rw_layer.h"
#include "tar/tar_wrapper.h"
#include "zfile/layer_blob.h"

namespace obd {
namespace {

using lsmt::kSector;
using lsmt::Segment;

// ZFile-compressing sink over a (possibly tar-wrapped) file.
class ZFileSink final : public lsmt::Sink {
 public:
  explicit ZFileSink(std::unique_ptr<ZFileWriter> w) : w_(std::move(w)) {}
  Status append(const void* buf, size_t len) override { return w_->append(buf, len); }
  ZFileWriter& writer() { return *w_; }

 private:
  std::unique_ptr<ZFileWriter> w_;
};

// Writes to `<out>.partial` and renames on success, so an interrupted commit
// never leaves a file that looks complete.
Status write_output(const CommitOutput& out, const std::function<Status(lsmt::Sink&)>& produce) {
  if (out.tar && !out.zfile)
    return Status(Code::kEINVAL, "tar wrapping (-t) needs ZFile compression (-z), as overlaybd-commit does");
  struct stat st;
  if (!out.force && ::stat(out.path.c_str(), &st) == 0)
    return Status(Code::kEEXIST, out.path + ": output exists (use -f to replace it)");
  std::string tmp = out.path + ".partial";
  ::unlink(tmp.c_str());
  OBD_ASSIGN_OR_RETURN(FilePtr file, open_local(tmp, OpenMode::kCreateExclusive));
  auto run = [&]() -> Status {
    FilePtr target = file;
    if (out.tar) {
      OBD_ASSIGN_OR_RETURN(target, tar_wrap_begin(file));
    }
    if (out.zfile) {
      OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(target, *out.zfile));
      ZFileSink sink(std::move(w));
      OBD_TRY(produce(sink));
      OBD_TRY(sink.writer().finish());
      if (out.tar) OBD_TRY(tar_wrap_finish(file, sink.writer().stored_size(), 0100644));
    } else {
      lsmt::FileSink sink(target);
      OBD_TRY(produce(sink));
    }
    return file->sync();
  };
  Status s = run();
  if (s.is_ok() && ::rename(tmp.c_str(), out.path.c_str()) != 0) s = Status::from_errno(errno, "rename to " + out.path);
  if (!s.is_ok()) ::unlink(tmp.c_str());
  return s;
}

// Reads a segment's sectors from one backing file; short reads are zeros.
lsmt::SegmentReader reader_for(File& f) {
  return [&f](const Segment& s, void* buf) -> Status {
    size_t len = size_t(s.length) * kSector;
    OBD_ASSIGN_OR_RETURN(size_t got, f.pread(buf, len, s.moffset * kSector));
    if (got < len) std::memset(static_cast<uint8_t*>(buf) + got, 0, len - got);
    return Status::ok();
  };
}

}  // namespace

Status commit_rw_layer(const std::string& data, const std::string& index, const lsmt::CommitOptions& opts,
                       const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(FilePtr df, open_local(data, OpenMode::kRead));
  FilePtr ixf;
  if (!index.empty()) {
    OBD_ASSIGN_OR_RETURN(ixf, open_local(index, OpenMode::kRead));
    OBD_ASSIGN_OR_RETURN(uint64_t isz, ixf->size());
    if (isz == 0) ixf.reset();  // sparse layers leave the index file empty
  }
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(df, ixf));
  std::vector<Segment> segs = rw->resolved();
  return write_output(out, [&](lsmt::Sink& sink) {
    return lsmt::commit_segments(segs, reader_for(*df), rw->header(), opts, sink);
  });
}

Status commit_sealed_layer(const std::string& sealed, const lsmt::CommitOptions& opts, const CommitOutput& out) {
  OBD_ASSIGN_OR_RETURN(FilePtr blob, open_local(sealed, OpenMode::kRead));
  OBD_ASSIGN_OR_RETURN(FilePtr f, open_layer_blob(blob));
  OBD_ASSIGN_OR_RETURN(auto layer, lsmt::open_ro_layer(f));
  return write_output(out, [&](lsmt::Sink& sink) {
    return lsmt::commit_segments(layer->index.segments(), reader_for(*layer->file), layer->header, opts, sink);
  });
}

Status seal_rw_layer(const std::string& data, const std::string& index) {
  OBD_ASSIGN_OR_RETURN(FilePtr df, open_local(data, OpenMode::kReadWrite));
  FilePtr ixf;
  if (!index.empty()) {
    OBD_ASSIGN_OR_RETURN(ixf, open_local(index, OpenMode::kRead));
    OBD_ASSIGN_OR_RETURN(uint64_t isz, ixf->size());
    if (isz == 0) ixf.reset();
  }
  OBD_ASSIGN_OR_RETURN(auto rw, lsmt::RwLayer::open(df, ixf));
  return rw->seal();
}

}  // namespace obd
