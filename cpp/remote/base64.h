// Base64 (RFC 4648, standard alphabet, padded) for HTTP Basic credentials and
// the `auth` field of credential files.
#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace obd::remote {

std::string base64_encode(std::string_view in);
// nullopt for characters outside the alphabet or a wrong length; padding optional.
std::optional<std::string> base64_decode(std::string_view in);

}  // namespace obd::remote
