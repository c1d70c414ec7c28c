// Whole-layer operations behind the overlaybd-create / overlaybd-commit tools:
// commit a writable or sealed layer into a read-only one (optionally ZFile
// compressed and tar wrapped), and seal in place.
#pragma once
#include <optional>
#include <string>

#include "lsmt/commit.h"
#include "zfile/output.h"

namespace obd {

// Where a commit goes: path, -z options, -t, -f.
using CommitOutput = OutputSpec;

// Commits an append or sparse writable layer (`index` empty for sparse).
Status commit_rw_layer(const std::string& data, const std::string& index, const lsmt::CommitOptions& opts,
                       const CommitOutput& out);
// Commits a sealed data file (overlaybd-commit --commit_sealed).
Status commit_sealed_layer(const std::string& sealed, const lsmt::CommitOptions& opts, const CommitOutput& out);
// Seals a writable layer's data file in place (overlaybd-commit --seal).
Status seal_rw_layer(const std::string& data, const std::string& index);

}  // namespace obd
