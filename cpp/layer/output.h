// Writing a layer or ZFile output the way the tools do: optionally ZFile
// compressed and tar wrapped (-z -t), built as a PendingFile (a unique
// temporary next to the path), synced, then moved into place, so an
// interrupted run never leaves a file that looks complete. An existing
// output is EEXIST unless `force` (-f), which replaces regular files only.
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "io/sink.h"
#include "zfile/writer.h"

namespace obd::layer {

struct OutputSpec {
  std::string path;
  std::optional<ZFileOptions> zfile;  // -z (with --algorithm, --bs)
  bool tar = false;                   // -t (only with -z, as upstream)
  bool force = false;                 // -f
  // fsync the file and its directory before it counts as written. Off for
  // intermediates that are read back and deleted (the convertor's).
  bool sync = true;
};

// Creates a pending file for `path`, runs `fill` on it, syncs it (unless
// `sync` is false) and moves it into place; on failure the temporary is
// removed. Returns the final size.
Result<uint64_t> write_file_atomically(const std::string& path, bool force, const std::function<Status(FilePtr)>& fill,
                                       bool sync = true);

// Runs `produce` against the output's sink; returns the final file size.
Result<uint64_t> write_output(const OutputSpec& out, const std::function<Status(Sink&)>& produce);

}  // namespace obd::layer
