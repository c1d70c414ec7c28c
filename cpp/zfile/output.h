// Writing a layer or ZFile output the way the tools do: optionally ZFile
// compressed and tar wrapped (-z -t), into `<path>.partial`, synced, then
// renamed over `path`, so an interrupted run never leaves a file that looks
// complete. An existing output is EEXIST unless `force` (-f).
#pragma once
#include <functional>
#include <optional>
#include <string>

#include "io/sink.h"
#include "zfile/writer.h"

namespace obd {

struct OutputSpec {
  std::string path;
  std::optional<ZFileOptions> zfile;  // -z (with --algorithm, --bs)
  bool tar = false;                   // -t (only with -z, as upstream)
  bool force = false;                 // -f
};

// Creates `<path>.partial`, runs `fill` on it, syncs it and renames it over
// `path`; on failure the partial file is removed. Returns the final size.
Result<uint64_t> write_file_atomically(const std::string& path, bool force, const std::function<Status(FilePtr)>& fill);

// Runs `produce` against the output's sink; returns the final file size.
Result<uint64_t> write_output(const OutputSpec& out, const std::function<Status(Sink&)>& produce);

}  // namespace obd
