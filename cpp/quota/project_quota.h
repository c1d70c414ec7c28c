// Project quotas on a directory tree (ext4 or XFS mounted with prjquota):
// the snapshotter's rootfsQuota and containerd.io/snapshot/disk_quota.
// The directory gets a project ID that new files and subdirectories
// inherit, and the filesystem a block limit for that ID.
#pragma once
#include <cstdint>
#include <string>

#include "common/status.h"

namespace obd::quota {

// The project ID of `path` (0 when none was set).
Result<uint32_t> project_id(const std::string& path);

// Gives directory `dir` project `id` with inheritance, then limits the
// project to `bytes` (rounded up to whole KiB; 0 removes the limit) on the
// filesystem holding `dir`. EOPNOTSUPP/ENOTTY: no project IDs here; ESRCH:
// quotas are not on for projects on that filesystem (mount it prjquota).
Status set_project_quota(const std::string& dir, uint32_t id, uint64_t bytes);

// Removes the block limit of project `id` on the filesystem holding `path`.
Status clear_project_limit(const std::string& path, uint32_t id);

}  // namespace obd::quota
