#include "layer/output.h"

#include "layer/pending_file.h"
#include "tar/wrapper.h"

namespace obd::layer {

Result<uint64_t> write_file_atomically(const std::string& path, bool force, const std::function<Status(FilePtr)>& fill,
                                       bool sync) {
  OBD_TRY(check_replaceable(path, force));  // fail before doing the work
  OBD_ASSIGN_OR_RETURN(auto pending, PendingFile::create(path));
  OBD_ASSIGN_OR_RETURN(FilePtr file, open_local(pending->temp_path(), OpenMode::kCreateExclusive));
  OBD_TRY(pending->adopt());
  OBD_TRY(fill(file));
  if (sync) OBD_TRY(file->sync());
  OBD_ASSIGN_OR_RETURN(uint64_t size, file->size());
  OBD_TRY(pending->publish(force, sync));
  return size;
}

Result<uint64_t> write_output(const OutputSpec& out, const std::function<Status(Sink&)>& produce) {
  if (out.tar && !out.zfile)
    return Status(Code::kEINVAL, "tar wrapping (-t) needs ZFile compression (-z), as overlaybd-commit does");
  if (out.zfile) OBD_TRY(validate_options(*out.zfile));
  return write_file_atomically(out.path, out.force, [&](FilePtr file) -> Status {
    FilePtr target = file;
    if (out.tar) {
      OBD_ASSIGN_OR_RETURN(target, tar::wrap_begin(file));
    }
    if (!out.zfile) {
      FileSink sink(target);
      return produce(sink);
    }
    OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(target, *out.zfile));
    OBD_TRY(produce(*w));
    OBD_TRY(w->finish());
    return out.tar ? tar::wrap_finish(file, w->stored_size(), 0100644) : Status::ok();
  }, out.sync);
}

}  // namespace obd::layer
