// A small JSON reader for the credential and token documents the remote
// module receives (cred.json, credential servers, token servers). Objects
// keep their members in document order: credential matching is "first key
// in file order".
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/status.h"

namespace obd::remote {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0;
  std::string string;
  std::vector<JsonValue> items;                              // kArray
  std::vector<std::pair<std::string, JsonValue>> members;    // kObject, in document order

  bool is_object() const { return kind == Kind::kObject; }
  bool is_string() const { return kind == Kind::kString; }
  // The first member named `key` of an object, or null.
  const JsonValue* get(std::string_view key) const;
};

// Parses a whole document (nesting at most 64 deep); EINVAL naming `what`
// and the byte offset of the first error.
Result<JsonValue> parse_json(std::string_view text, const std::string& what);

}  // namespace obd::remote
