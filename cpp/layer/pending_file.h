// Outputs built under a unique temporary name next to their final path and
// moved into place only when complete, so a failed or interrupted run never
// leaves a file that looks finished, and two runs never share a temporary.
//
// Each pending file gets a private directory `<dir>/.<name>.partial.XXXXXX`
// (mkdtemp, same filesystem) holding `<name>`. publish() renames it onto the
// final path only if it is still the file we made: without `force` with a
// no-replace rename (RENAME_NOREPLACE, else link + unlink), so of two
// concurrent runs exactly one succeeds; with `force` over a regular file
// only (never over a device node, directory or symlink).
//
// Every live pending file is in a process-wide registry so a signal handler
// can remove them all (remove_pending_files) before the process exits.
#pragma once
#include <sys/types.h>

#include <memory>
#include <string>

#include "common/status.h"

namespace obd::layer {

// EEXIST when `path` exists and `force` is off; EINVAL when it exists and
// is not a regular file (nothing else may be replaced, even with force).
Status check_replaceable(const std::string& path, bool force);

// Renames `from` to `to` unless `to` exists (RENAME_NOREPLACE, else link +
// unlink): EEXIST then, and nothing moves. Syncs the directory of `to`
// unless `sync` is false.
Status rename_no_replace(const std::string& from, const std::string& to, bool sync = true);

class PendingFile {
 public:
  // Makes the private directory for `path`; the file itself is not created.
  // CLOSED once remove_pending_files() has run (the process is exiting).
  static Result<std::unique_ptr<PendingFile>> create(const std::string& path);
  ~PendingFile();  // removes the temporary (and its directory) unless published
  PendingFile(const PendingFile&) = delete;
  PendingFile& operator=(const PendingFile&) = delete;

  const std::string& path() const { return path_; }
  const std::string& temp_path() const { return temp_; }

  // Records the identity of the file now at temp_path() as ours.
  Status adopt();
  // Moves the adopted file onto path() (see above) and syncs the directory
  // (unless `sync` is false).
  Status publish(bool force, bool sync = true);
  // Undoes a publish whose companion failed: removes path() if it is still ours.
  void unpublish();

 private:
  PendingFile() = default;

  std::string path_, dir_, temp_;
  uint64_t id_ = 0;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool adopted_ = false, published_ = false;
};

// Removes every pending temporary of the process and refuses new ones.
// Safe to call from a signal handler's JavaScript callback (not from a raw
// signal handler: it takes a lock). Returns how many were removed.
size_t remove_pending_files();

}  // namespace obd::layer
