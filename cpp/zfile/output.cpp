#include "zfile/output.h"

#include <sys/stat.h>
#include <unistd.h>

#include "tar/tar_wrapper.h"

namespace obd {
Result<uint64_t> write_file_atomically(const std::string& path, bool force, const std::function<Status(FilePtr)>& fill) {
  struct stat st;
  if (!force && ::stat(path.c_str(), &st) == 0)
    return Status(Code::kEEXIST, path + ": output exists (use -f to replace it)");
  std::string tmp = path + ".partial";
  ::unlink(tmp.c_str());
  OBD_ASSIGN_OR_RETURN(FilePtr file, open_local(tmp, OpenMode::kCreateExclusive));
  Status s = fill(file);
  if (s.is_ok()) s = file->sync();
  if (s.is_ok() && ::rename(tmp.c_str(), path.c_str()) != 0) s = Status::from_errno(errno, "rename to " + path);
  if (!s.is_ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return file->size();
}

Result<uint64_t> write_output(const OutputSpec& out, const std::function<Status(Sink&)>& produce) {
  if (out.tar && !out.zfile)
    return Status(Code::kEINVAL, "tar wrapping (-t) needs ZFile compression (-z), as overlaybd-commit does");
  if (out.zfile) OBD_TRY(validate_options(*out.zfile));
  return write_file_atomically(out.path, out.force, [&](FilePtr file) -> Status {
    FilePtr target = file;
    if (out.tar) {
      OBD_ASSIGN_OR_RETURN(target, tar_wrap_begin(file));
    }
    if (!out.zfile) {
      FileSink sink(target);
      return produce(sink);
    }
    OBD_ASSIGN_OR_RETURN(auto w, ZFileWriter::create(target, *out.zfile));
    OBD_TRY(produce(*w));
    OBD_TRY(w->finish());
    return out.tar ? tar_wrap_finish(file, w->stored_size(), 0100644) : Status::ok();
  });
}

}  // namespace obd
