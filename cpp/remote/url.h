// URL helpers: percent-encoding of query values, relative Location
// resolution, and the credential-matching prefixes of a blob URL.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace obd::remote {

// Percent-encodes everything but RFC 3986 unreserved characters.
std::string url_encode(std::string_view s);

// `location` (absolute, or relative as in a 3xx Location header) resolved
// against `base`; nullopt if either is not a URL.
std::optional<std::string> resolve_url(const std::string& base, const std::string& location);

// "scheme://host[:port]" of a URL, or "" if it has none.
std::string url_origin(std::string_view url);

// Candidate credential keys of https://<host>/v2/<ns>/<repo...>/blobs/<digest>:
// host, host/ns, host/ns/repo, ... (shortest first). A URL without
// "/v2/" yields the host alone.
std::vector<std::string> credential_candidates(std::string_view blob_url);

}  // namespace obd::remote
