// Entry names made safe to join under a root, the way containerd's apply
// does it (filepath.Join("/", name), then relative to "/"): a name can never
// climb out of the layer root. Internal to archive/.
#pragma once
#include <string>
#include <string_view>

namespace obd::archive {

// "../../etc/x" -> "etc/x", "/abs/y" -> "abs/y", "a/./b//c/" -> "a/b/c",
// "./" -> "" (the root). Bytes other than '/' are kept verbatim.
std::string clean_path(std::string_view name);

}  // namespace obd::archive
