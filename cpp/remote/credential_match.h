// The one credential matching rule (§5.2): a blob URL's candidate prefixes
// (url.h credential_candidates) against auths keys; the first key in
// document order equal to any candidate wins.
#pragma once
#include <optional>
#include <string>

#include "common/status.h"
#include "remote/credentials.h"
#include "remote/json.h"

namespace obd::remote {

// The index of the first key equal to a candidate of `blob_url`, or nullopt.
std::optional<size_t> match_key(const std::vector<std::string>& keys, const std::string& blob_url);

// Matches an "auths" object; the chosen entry must hold username+password
// or a base64 "user:password" `auth`, else EIO naming `what` and the key.
Result<std::optional<Credential>> match_auths(const JsonValue& auths, const std::string& blob_url,
                                              const std::string& what);

// Parses a whole cred.json-style document ({"auths": {...}}) and matches it.
Result<std::optional<Credential>> match_auths_document(std::string_view json, const std::string& blob_url,
                                                       const std::string& what);

}  // namespace obd::remote
