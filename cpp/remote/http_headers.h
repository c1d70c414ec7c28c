// Parsers for the registry's response headers: WWW-Authenticate challenges,
// Content-Range and Retry-After.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace obd::remote {

struct Challenge {
  enum class Scheme { kBasic, kBearer } scheme;
  std::string realm, service, scope;  // Bearer parameters (service, scope may be empty)
};
// nullopt for a scheme other than Basic or Bearer, or a Bearer without realm.
std::optional<Challenge> parse_challenge(std::string_view header);

struct ContentRange {
  uint64_t first = 0, last = 0;  // meaningful unless `unsatisfied`
  std::optional<uint64_t> total;  // "*" = unknown
  bool unsatisfied = false;       // "bytes */<total>" (a 416 answer)
};
std::optional<ContentRange> parse_content_range(std::string_view header);

// Seconds to wait (delta-seconds form only; an HTTP date is ignored).
std::optional<uint64_t> parse_retry_after(std::string_view header);

}  // namespace obd::remote
