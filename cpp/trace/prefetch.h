// The two ways a device warms its caches at start (format spec §6.4):
// replaying a recorded trace against the lower layers, and reading the data
// blocks of listed files through the filesystem on the merged device.
#pragma once
#include <atomic>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "io/file.h"
#include "trace/format.h"
#include "trace/reader.h"

namespace obd::trace {

// Reads each 'R' record's range from layers[record.layer] with
// `concurrency` threads, in ≤ 1 MiB pieces. Records naming a missing (or
// null) layer or a negative offset are skipped and counted as errors;
// 'W' and unknown ops are skipped, as upstream does. Read errors are
// counted, never fatal. Stops early when *cancel becomes true.
PrefetchStats replay(std::span<const Record> records, const std::vector<FilePtr>& layers, unsigned concurrency,
                     const std::atomic<bool>* cancel = nullptr);

// The device byte ranges holding the data of the listed files, in list
// order (a directory's tree in name order), each file once, adjacent
// ranges merged. A path naming a directory, or ending in '/' or '*', stands
// for every regular file under it. Each path that does not exist (or ends
// in '/' and is no directory), tree that cannot be listed or file whose
// blocks cannot be mapped adds one to *errors and is left out. Fails only
// when there is no readable ext4 filesystem. The filesystem on `image` is
// only read.
Result<std::vector<Extent>> file_ranges(FilePtr image, std::span<const std::string> paths, uint64_t* errors);

// file_ranges, then reads those ranges of `image` in ≤ 1 MiB pieces with
// `concurrency` threads; what file_ranges left out counts as errors.
Result<PrefetchStats> prefetch_paths(FilePtr image, std::span<const std::string> paths, unsigned concurrency,
                                     const std::atomic<bool>* cancel = nullptr);

}  // namespace obd::trace
