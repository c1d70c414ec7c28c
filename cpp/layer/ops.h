// Whole-layer operations behind the overlaybd-create / overlaybd-commit tools:
// create a writable layer, commit a writable or sealed layer into a
// read-only one (optionally ZFile compressed and tar wrapped), seal in place.
// Outputs appear atomically (pending_file.h): all complete, or none.
#pragma once
#include <functional>
#include <string>

#include "layer/opener.h"
#include "layer/output.h"
#include "lsmt/commit.h"
#include "lsmt/rw_layer.h"

namespace obd::layer {

// Where a commit goes: path, -z options, -t, -f.
using CommitOutput = OutputSpec;

// Runs on a new layer's files before they are published (e.g. mkfs) and
// leaves them durable (synced); `index` is empty for a sparse layer.
using LayerInit = std::function<Status(const std::string& data, const std::string& index)>;

// Creates an empty writable layer at `data` and `index` (neither may exist):
// built under temporary names (create_rw_layer syncs them), `init` run on
// them, then both moved
// into place with no-replace renames. On failure nothing is left behind.
Status create_layer(const std::string& data, const std::string& index, const lsmt::CreateOptions& opts,
                    const LayerInit& init = nullptr);

// Commits an append or sparse writable layer (`index` empty for sparse).
Status commit_rw_layer(const std::string& data, const std::string& index, const lsmt::CommitOptions& opts,
                       const CommitOutput& out);
// Commits a sealed layer blob (overlaybd-commit --commit_sealed).
Status commit_sealed_layer(BlobOpener& opener, const LayerRef& sealed, const lsmt::CommitOptions& opts,
                           const CommitOutput& out);
// Seals a writable layer's data file in place (overlaybd-commit --seal).
Status seal_rw_layer(const std::string& data, const std::string& index);

}  // namespace obd::layer
