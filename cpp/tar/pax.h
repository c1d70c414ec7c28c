// POSIX pax extended header records ("LEN key=value\n") and the value
// syntaxes tar readers use (the OCI stream reader and the layer wrapper).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace obd::tar {

using PaxRecords = std::vector<std::pair<std::string, std::string>>;

// Appends the records of one header's data in order. Returns "" on success,
// else what is wrong (a length that overruns the data, a missing '=', ...).
std::string parse_pax_records(std::string_view data, PaxRecords* out);

// A decimal integer within [0, max].
bool parse_decimal(std::string_view s, uint64_t max, uint64_t* out);

// A pax time "[-]sec[.frac]", normalised so that nsec is in [0, 1e9).
bool parse_pax_time(std::string_view s, int64_t* sec, uint32_t* nsec);

// LIBARCHIVE.xattr.* names are %-encoded and values base64.
bool percent_decode(std::string_view s, std::string* out);
bool base64_decode(std::string_view s, std::string* out);

}  // namespace obd::tar
