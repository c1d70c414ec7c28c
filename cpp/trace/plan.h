// What a device's recordTracePath asks for (format spec §5.1, §6.4), decided
// from the file as upstream does: missing -> nothing; empty -> record a
// trace; starting with the trace magic -> replay it; anything else -> a text
// list of paths to prefetch through the filesystem.
#pragma once
#include <string>
#include <vector>

#include "common/status.h"
#include "trace/format.h"

namespace obd::trace {

enum class Mode { kNone, kRecord, kReplay, kFileList };

struct Plan {
  Mode mode = Mode::kNone;
  std::vector<Record> records;     // kReplay
  std::vector<std::string> paths;  // kFileList, each starting with '/'
};

constexpr size_t kMaxListSize = 64 * 1024;   // upstream's limit for a text list

// A text list: one path per line; surrounding blanks and a '\r' are dropped,
// empty lines skipped. Paths are taken from the root whether or not they
// start with '/' (upstream trims the slashes too). A trailing '/' or '*'
// (kept in the path) means the whole tree. EINVAL for a NUL byte (a binary
// file, not a list) or a list over 64 KiB.
Result<std::vector<std::string>> parse_list(std::string_view text, const std::string& name);

Result<Plan> load(const std::string& path);

}  // namespace obd::trace
