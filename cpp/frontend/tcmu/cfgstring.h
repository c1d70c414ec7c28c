// The device's configuration string, as upstream's snapshotter writes it to
// configfs (`dev_config=overlaybd/<config path>[;<dev_id>]`) and the kernel
// names the UIO device with it (`tcm-user/<hba>/<device>/<cfgstring>`).
#pragma once
#include <string>
#include <string_view>

#include "common/status.h"

namespace obd::frontend::tcmu {

constexpr std::string_view kHandlerSubtype = "overlaybd";

struct CfgString {
  std::string config_path;  // absolute path of config.v1.json
  std::string dev_id;       // after the first ';', empty when absent
};

// Parses `overlaybd/<config path>[;<dev_id>]`. EINVAL names what is wrong
// (another handler's subtype, no path, a relative path, an empty dev_id).
Result<CfgString> parse_cfgstring(std::string_view s);

struct UioName {
  std::string hba;     // "user_<hba>" is its configfs directory
  std::string device;  // the configfs device directory name
  std::string cfgstring;
};

// Splits a UIO device name (`/sys/class/uio/uioN/name`) of target_core_user.
Result<UioName> parse_uio_name(std::string_view name);

}  // namespace obd::frontend::tcmu
