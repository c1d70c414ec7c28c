#include "frontend/tcmu/cfgstring.h"

namespace obd::frontend::tcmu {
namespace {

Status bad(std::string_view s, const std::string& why) {
  return Status(Code::kEINVAL, "TCMU cfgstring \"" + std::string(s) + "\": " + why);
}

}  // namespace

Result<CfgString> parse_cfgstring(std::string_view s) {
  size_t slash = s.find('/');
  if (slash == std::string_view::npos || s.substr(0, slash) != kHandlerSubtype)
    return bad(s, "not for the handler \"" + std::string(kHandlerSubtype) + "\"");
  std::string_view rest = s.substr(slash + 1);
  CfgString c;
  // Upstream splits at the first ';': a config path never holds one.
  if (size_t semi = rest.find(';'); semi != std::string_view::npos) {
    c.dev_id = rest.substr(semi + 1);
    rest = rest.substr(0, semi);
    if (c.dev_id.empty()) return bad(s, "empty dev_id after ';'");
  }
  if (rest.empty()) return bad(s, "no config path");
  if (rest.front() != '/') return bad(s, "config path is not absolute");
  if (rest.find('\0') != std::string_view::npos || c.dev_id.find('\0') != std::string::npos)
    return bad(s, "NUL byte");
  c.config_path = rest;
  return c;
}

Result<UioName> parse_uio_name(std::string_view name) {
  constexpr std::string_view kPrefix = "tcm-user/";
  while (!name.empty() && (name.back() == '\n' || name.back() == '\0')) name.remove_suffix(1);
  if (name.substr(0, kPrefix.size()) != kPrefix)
    return Status(Code::kEINVAL, "UIO device \"" + std::string(name) + "\" is not target_core_user's");
  std::string_view rest = name.substr(kPrefix.size());
  size_t a = rest.find('/');
  size_t b = a == std::string_view::npos ? a : rest.find('/', a + 1);
  if (b == std::string_view::npos || a == 0 || b == a + 1)
    return Status(Code::kEINVAL, "UIO device \"" + std::string(name) + "\": expected tcm-user/<hba>/<device>/<cfgstring>");
  return UioName{std::string(rest.substr(0, a)), std::string(rest.substr(a + 1, b - a - 1)),
                 std::string(rest.substr(b + 1))};
}

}  // namespace obd::frontend::tcmu
